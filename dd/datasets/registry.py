"""Every dataset kind, by config ``name``: the built-in kinds, then those of installed plugins
(entry points of the group ``dd.datasets``, ``dd.spec.plugins``).

To add a kind to dd: one module (its config class, a subclass of ``dd.spec.config.Data``; its
loader; its ``KIND = DatasetKind(...)``, see ``dd.datasets.base``) + one line in ``BUILT_IN``.
Nothing is registered on import: ``load()`` fills the registry (and ``Data.VARIANTS``, which
the spec parser reads) the first time a kind is asked for.
"""

from __future__ import annotations

from dd.datasets import arrays, digits, gaussian, images, mnist1d, modular, python
from dd.datasets.base import DatasetKind, config_names
from dd.spec.config import Data
from dd.spec.plugins import plugins

GROUP = "dd.datasets"

BUILT_IN: tuple[DatasetKind, ...] = (
    mnist1d.KIND,
    digits.KIND,
    gaussian.KIND,
    images.KIND,
    modular.KIND,
    arrays.KIND,
    python.KIND,
)

_KINDS: list[DatasetKind] = []
_BY_NAME: dict[str, DatasetKind] = {}


def load() -> tuple[DatasetKind, ...]:
    """Every kind, built-in then plugins, registered once per process (later calls return
    them)."""
    if not _KINDS:
        found = list(BUILT_IN)
        taken = [name for kind in found for name in kind.names]
        found += plugins(GROUP, DatasetKind, taken, name_of=lambda kind: kind.names)
        for kind in found:
            for config in kind.configs:
                Data.VARIANTS.update({name: config for name in config_names(config)})
            _BY_NAME.update({name: kind for name in kind.names})
        _KINDS.extend(found)
    return tuple(_KINDS)


def kind_of(data: Data) -> DatasetKind:
    """The kind of a data config (by its ``name``)."""
    load()
    return _BY_NAME[data.name]
