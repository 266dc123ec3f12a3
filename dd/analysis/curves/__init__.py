"""Curve kinds: one module per kind of curve, in the order of ``dd.analysis.curves.registry``.

A kind (``dd.analysis.curves.base.CurveKind``) says when it applies to a sweep, computes its result
from the sweep's ok rows (pure functions of Arrow tables), and gives its tables, figures,
terminal lines and report sections; the aggregator, the report and ``dd.plan.sweep`` loop over
the registry and name no kind. See docs/extending.md for adding one.
"""
