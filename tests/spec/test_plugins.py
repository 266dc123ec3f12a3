"""Kinds from installed packages (``dd.spec.plugins``): every entry point of a group is loaded
in order, and one that cannot be imported, names no kind, or takes a registered name is one
line naming the entry point and why, with the others still loaded."""

from __future__ import annotations

import io
from types import SimpleNamespace

from dd.spec.plugins import plugins
from helpers import write_distribution

GOOD = "from types import SimpleNamespace\nKIND = SimpleNamespace(name='moons')\nOTHER = 3\n"
BROKEN = "import no_such_module_for_dd_tests\n"


def _install(tmp_path, monkeypatch, points: dict[str, str]) -> None:
    folder = write_distribution(
        tmp_path / "site",
        "ddtest_plugin",
        {"ddtest.kinds": points},
        {"ddtest_good.py": GOOD, "ddtest_broken.py": BROKEN},
    )
    monkeypatch.syspath_prepend(str(folder))


def test_an_entry_points_kind_is_loaded(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, {"moons": "ddtest_good:KIND"})
    (kind,) = plugins("ddtest.kinds", SimpleNamespace)
    assert kind.name == "moons"


def test_a_broken_plugin_is_one_line_naming_it_and_the_others_still_load(tmp_path, monkeypatch):
    _install(
        tmp_path,
        monkeypatch,
        {
            "broken": "ddtest_broken:KIND",
            "moons": "ddtest_good:KIND",
            "number": "ddtest_good:OTHER",
            "twin": "ddtest_good:KIND",
        },
    )
    warn = io.StringIO()
    kinds = plugins("ddtest.kinds", SimpleNamespace, taken=["digits"], warn=warn)
    assert [k.name for k in kinds] == ["moons"]
    lines = warn.getvalue().splitlines()
    assert lines == [
        "dd: plugin broken = ddtest_broken:KIND (ddtest.kinds) left out: "
        "ModuleNotFoundError: No module named 'no_such_module_for_dd_tests'",
        "dd: plugin number = ddtest_good:OTHER (ddtest.kinds) left out: "
        "not a SimpleNamespace (got int)",
        "dd: plugin twin = ddtest_good:KIND (ddtest.kinds) left out: "
        "name 'moons' is already registered",
    ]


def test_a_plugin_may_not_take_a_built_in_name(tmp_path, monkeypatch):
    _install(tmp_path, monkeypatch, {"moons": "ddtest_good:KIND"})
    warn = io.StringIO()
    assert plugins("ddtest.kinds", SimpleNamespace, taken=["moons"], warn=warn) == []
    assert "name 'moons' is already registered" in warn.getvalue()
