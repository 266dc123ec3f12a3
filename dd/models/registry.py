"""Every model kind, networks and closed-form feature maps, by config ``name``: the built-in
kinds, then those of installed plugins (entry points of the group ``dd.models``,
``dd.spec.plugins``).

To add a kind to dd: one module (its config class, a subclass of ``NetworkModel`` or
``FeatureModel`` in ``dd.models.base``; its build or features; its ``KIND``) + one line in
``BUILT_IN``. Nothing is registered on import: ``load()`` fills the registry (and
``Model.VARIANTS``, which the spec parser reads) the first time a kind is asked for.
The engine asks only ``kind_of(trial)`` and the helpers below.
"""

from __future__ import annotations

import dataclasses

from dd.models import cnn, fourier, mlp, raw, relu, resnet, transformer, user_module
from dd.models.base import Family, FeatureMap
from dd.models.precision import compute_dtype
from dd.spec.config import Model, Trial
from dd.spec.plugins import plugins

GROUP = "dd.models"

BUILT_IN: tuple[Family | FeatureMap, ...] = (
    raw.KIND,
    fourier.KIND,
    fourier.PCA_KIND,
    relu.KIND,
    mlp.KIND,
    cnn.KIND,
    resnet.KIND,
    transformer.KIND,
    user_module.KIND,
)

_KINDS: list[Family | FeatureMap] = []
_BY_NAME: dict[str, Family | FeatureMap] = {}


def load() -> tuple[Family | FeatureMap, ...]:
    """Every kind, built-in then plugins, registered once per process (later calls return
    them)."""
    if not _KINDS:
        found = list(BUILT_IN)
        found += plugins(GROUP, (Family, FeatureMap), [kind.name for kind in found])
        _BY_NAME.update({kind.name: kind for kind in found})
        Model.VARIANTS.update({kind.name: kind.config for kind in found})
        _KINDS.extend(found)
    return tuple(_KINDS)


def kind_of(trial: Trial) -> Family | FeatureMap:
    """The kind of a trial's model (by its config ``name``)."""
    load()
    return _BY_NAME[trial.model.name]


def model_kind(model: Model) -> Family | FeatureMap:
    """The kind of a model config (by its ``name``)."""
    load()
    return _BY_NAME[model.name]


def make_model(trial: Trial):
    """The Flax module of a trial's network, at the trial's precision."""
    return kind_of(trial).build(trial, compute_dtype(trial.train.precision))


def n_params(trial: Trial) -> int:
    """The trainable parameter count of the trial's own model (not its padded program)."""
    return kind_of(trial).count(trial)


def program_trial(trial: Trial) -> Trial:
    """The trial as its program is compiled: its model at the kind's program width (and a
    conv net's channel rounding, ``ConvModel.program``)."""
    model = trial.model.program(kind_of(trial).program_width(trial))
    return trial if model == trial.model else dataclasses.replace(trial, model=model)
