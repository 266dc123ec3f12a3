"""dd's own settings: read once, where the CLI or the API is entered, from the flags given
and the environment, then passed down: the driver takes them as ``run_sweep(settings=)`` and
gives the workers ``data_dir`` and ``cache_dir`` (``dd.datasets.base.Locations``); the spec
readers take ``max_trials``. Nothing below the CLI and the API reads these variables.

Each setting is a flag (where the command has one) over an environment variable over a
default; ``VARIABLES`` are the rows of README.md's configuration table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dd.spec.errors import DDError

DEFAULT_COMPILE_CACHE = "~/.cache/dd/jax"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where results go, which Ray to use, and the limits of a run.

    ``address`` None starts a fresh local Ray instance; ``compile_cache`` None compiles
    afresh (the variable or flag's ``off``). ``data_dir`` and ``cache_dir`` are the image
    files' folder (a spec's ``data.data_dir`` wins) and where generated datasets are cached;
    ``cost_tables`` None reads the shipped step-time tables (``dd.engine.costs``);
    ``warm_state`` None is ``dd up``'s state file of this machine (``dd.run.warm.state_path``).
    """

    results: str = "results"
    address: str | None = None
    connect_timeout_s: float = 30.0
    cpus: int | None = None
    compile_cache: str | None = DEFAULT_COMPILE_CACHE
    max_trials: int = 10_000_000
    data_dir: str | None = None
    cache_dir: str = "~/.cache/dd"
    cost_tables: str | None = None
    warm_state: str | None = None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """The flags that were given (None: not given) over ``environ`` (default: this
        process's environment) over the defaults; a bad variable is a one-line DDError."""
        environ = os.environ if environ is None else environ
        values = {}
        for variable in VARIABLES:
            text = environ.get(variable.name)
            if flags.get(variable.setting) is None and text:
                values[variable.setting] = variable.parse(variable.name, text)
        for name, value in flags.items():
            if value is not None:
                values[name] = _compile_cache(value) if name == "compile_cache" else value
        return cls(**values)


def _text(variable: str, text: str) -> str:
    return text


def _compile_cache(text: str) -> str | None:
    return None if text == "off" else text


def _cache_setting(variable: str, text: str) -> str | None:
    return _compile_cache(text)


def _seconds(variable: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise DDError(f"${variable}: must be a number of seconds > 0, got {text!r}")
    return value


def _count(variable: str, text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise DDError(f"${variable}: must be a whole number >= 1, got {text!r}")
    return int(text)


@dataclass(frozen=True)
class Variable:
    """An environment variable of dd: the setting it gives, its flag (if any), its parser."""

    setting: str
    name: str
    flag: str | None
    parse: Callable[[str, str], Any]


VARIABLES = (  # README.md's configuration table shows each, with its default and meaning
    Variable("results", "DD_RESULTS", "--results", _text),
    Variable("address", "RAY_ADDRESS", "--address", _text),
    Variable("connect_timeout_s", "DD_CONNECT_TIMEOUT", "--connect-timeout", _seconds),
    Variable("compile_cache", "DD_COMPILE_CACHE", "--compile-cache", _cache_setting),
    Variable("max_trials", "DD_MAX_TRIALS", None, _count),
    Variable("data_dir", "DD_DATA_DIR", None, _text),
    Variable("cache_dir", "DD_CACHE_DIR", None, _text),
    Variable("cost_tables", "DD_COST_TABLES", None, _text),
    Variable("warm_state", "DD_WARM_STATE", None, _text),
)
