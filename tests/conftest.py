"""Shared fixtures: tiny specs on disk, and one local Ray instance for the tests that need it.
(Helpers that tests import, such as the dd subprocess runner, are in tests/helpers.py.)

Markers (registered in pyproject.toml; `make test-fast` deselects the first three): ``slow``
for a test over about 3 s, ``ray`` for one that starts Ray (given here to every test that uses
the ``ray_local`` fixture; a test that starts Ray in a subprocess is marked by hand),
``browser`` for one that drives Chromium, and ``gpu`` for one that needs a GPU: deselected
here where no GPU answers (``nvidia-smi -L``, the Makefile's own test), unless ``-m`` names
``gpu`` (`make test-gpu`) to run them on purpose. A test of the path without a GPU is marked
``helpers.without_gpu`` and skips where one answers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from helpers import gpu_answers

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)
    if gpu_answers() or "gpu" in (config.option.markexpr or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance shared by the tests of a session (started once, it takes seconds)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture
def write_spec(tmp_path: Path):
    """Write a spec mapping to a YAML file and return its path."""

    def write(mapping: dict, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        return path

    return write
