"""Every dataset kind, by config ``name``.

To add a kind: one module (its config class, a subclass of ``dd.spec.config.Data``; its loader;
its ``KIND = DatasetKind(...)``, see ``dd.datasets.base``) + one line here.
"""

from __future__ import annotations

from dd.datasets import arrays, digits, gaussian, images, mnist1d, modular, python
from dd.datasets.base import DatasetKind, config_names
from dd.spec.config import Data

KINDS: tuple[DatasetKind, ...] = (
    mnist1d.KIND,
    digits.KIND,
    gaussian.KIND,
    images.KIND,
    modular.KIND,
    arrays.KIND,
    python.KIND,
)

_BY_NAME = {name: kind for kind in KINDS for name in kind.names}
Data.VARIANTS.update({name: c for kind in KINDS for c in kind.configs for name in config_names(c)})


def kind_of(data: Data) -> DatasetKind:
    """The kind of a data config (by its ``name``)."""
    return _BY_NAME[data.name]
