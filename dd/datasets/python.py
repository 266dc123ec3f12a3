"""A user's arrays from a Python loader: ``data: {name: python, loader: "pkg.mod:load"}``."""

from __future__ import annotations

from dataclasses import dataclass

from dd.datasets.user import Arrays, UserData, loader_arrays, user_kind
from dd.spec.fields import NO_OPTIONS, Options, join
from dd.spec.user_code import check_import_path


@dataclass(frozen=True, kw_only=True)
class PythonData(UserData):
    """Arrays returned by ``loader`` ("package.module:function"), called with ``options``:
    a mapping with the keys x_train, y_train, x_test, y_test, or those four in a tuple."""

    name: str = "python"
    loader: str
    options: Options = NO_OPTIONS

    def check(self, path: str) -> None:
        check_import_path(join(path, "loader"), self.loader)
        super().check(path)


def arrays_of(data: PythonData) -> Arrays:
    return loader_arrays(data.loader, data.options, data.task, data.classes)


KIND = user_kind(PythonData, arrays_of)
