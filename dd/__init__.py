"""dd: sweeps of double-descent and grokking experiments, scheduled by Ray, trained in JAX."""

__version__ = "0.4.0"
