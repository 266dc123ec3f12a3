"""dd's settings: flags over environment variables over defaults, read once into a frozen
object; README's configuration table lists every variable."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dd.spec.errors import DDError
from dd.spec.settings import VARIABLES, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_a_flag_wins_over_its_variable_which_wins_over_the_default():
    environ = {
        "DD_RESULTS": "/data/results",
        "RAY_ADDRESS": "ray://head:10001",
        "DD_MAX_TRIALS": "50",
        "DD_DATA_DIR": "/data/images",
        "DD_CACHE_DIR": "/tmp/dd-cache",
    }
    loaded = Settings.load(environ)
    assert (loaded.results, loaded.address, loaded.max_trials) == (
        "/data/results",
        "ray://head:10001",
        50,
    )
    assert (loaded.data_dir, loaded.cache_dir) == ("/data/images", "/tmp/dd-cache")
    flagged = Settings.load(environ, results="mine", address="head:6379", cpus=3)
    assert (flagged.results, flagged.address, flagged.cpus) == ("mine", "head:6379", 3)
    assert Settings.load({}) == Settings()
    assert Settings().address is None and Settings().results == "results"
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.results = "elsewhere"


@pytest.mark.parametrize(
    ("variable", "text"),
    [("DD_MAX_TRIALS", "many"), ("DD_MAX_TRIALS", "0"), ("DD_CONNECT_TIMEOUT", "-1")],
)
def test_a_bad_variable_is_one_line_naming_it(variable, text):
    with pytest.raises(DDError, match=rf"^\${variable}: must be .*got '{text}'$"):
        Settings.load({variable: text})


def test_the_readme_table_lists_every_variable_with_its_flag():
    rows = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(\w+)` \| (`--[\w-]+`)? ?\|", README.read_text(), re.M)
    }
    names = {f.name for f in dataclasses.fields(Settings)}
    for variable in VARIABLES:
        assert variable.setting in names
        assert variable.name in rows, f"{variable.name} is missing from README's table"
        assert rows[variable.name] == (f"`{variable.flag}`" if variable.flag else None)
    assert len(rows) == len(VARIABLES)
