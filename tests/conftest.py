"""Shared fixtures: tiny specs on disk, and one local Ray instance for the tests that need it.

Markers (registered in pyproject.toml; `make test-fast` deselects all three): ``slow`` for a
test over about 5 s, ``ray`` for one that starts Ray (given here to every test that uses the
``ray_local`` fixture; a test that starts Ray in a subprocess is marked by hand), ``browser``
for one that drives Chromium.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "ray_local" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ray)


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
