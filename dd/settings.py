"""dd's own settings: read once, where the CLI or the API is entered, from the flags given
and the environment, then passed down. Nothing deeper reads dd's environment variables.

Each setting is a flag (where the command has one) over an environment variable over a
default; ``VARIABLES`` is the table that README.md's configuration section shows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dd.errors import DDError

DEFAULT_COMPILE_CACHE = "~/.cache/dd/jax"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Where results go, which Ray to use, and the limits of a run.

    ``address`` None starts a fresh local Ray instance; ``compile_cache`` None compiles
    afresh (the variable or flag's ``off``). ``data_dir`` and ``cache_dir`` are the image
    files' folder (a spec's ``data.data_dir`` wins) and where generated datasets are cached.
    """

    results: str = "results"
    address: str | None = None
    connect_timeout_s: float = 30.0
    cpus: int | None = None
    compile_cache: str | None = DEFAULT_COMPILE_CACHE
    max_trials: int = 10_000_000
    data_dir: str | None = None
    cache_dir: str = "~/.cache/dd"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """The flags that were given (None: not given) over ``environ`` (default: this
        process's environment) over the defaults; a bad variable is a one-line DDError."""
        environ = os.environ if environ is None else environ
        values = {}
        for name, variable, parse, _ in VARIABLES:
            if flags.get(name) is None and environ.get(variable):
                values[name] = parse(variable, environ[variable])
        for name, value in flags.items():
            if value is not None:
                values[name] = _compile_cache(value) if name == "compile_cache" else value
        return cls(**values)


def _text(variable: str, text: str) -> str:
    return text


def _compile_cache(text: str) -> str | None:
    return None if text == "off" else text


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


# (setting, environment variable, parser, what it is: the README's table)
VARIABLES: tuple[tuple[str, str, Callable[[str, str], Any], str], ...] = (
    ("results", "DD_RESULTS", _text, "results root, a folder or a URI (`--results`)"),
    ("address", "RAY_ADDRESS", _text, "a Ray cluster to join (`--address`); unset: local Ray"),
    (
        "connect_timeout_s",
        "DD_CONNECT_TIMEOUT",
        _seconds,
        "seconds an `--address` may take to answer (`--connect-timeout`)",
    ),
    (
        "compile_cache",
        "DD_COMPILE_CACHE",
        lambda variable, text: _compile_cache(text),
        "the workers' JAX compilation cache folder, `off` for none (`--compile-cache`)",
    ),
    ("max_trials", "DD_MAX_TRIALS", _count, "the most grid points a spec may have"),
    ("data_dir", "DD_DATA_DIR", _text, "image data files, when the spec has no `data_dir`"),
    ("cache_dir", "DD_CACHE_DIR", _text, "cache of generated datasets (MNIST-1D)"),
)
