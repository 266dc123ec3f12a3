"""The one build step pyproject.toml cannot declare: a wheel carries the repository's
requirements.lock as dd/requirements.lock, so rows from a wheel install still name the lock
of exact versions they were made from (dd/spec/provenance.py reads it)."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithLock(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the lock in the source tree
            self.copy_file("requirements.lock", str(Path(self.build_lib) / "dd"))


setup(cmdclass={"build_py": BuildPyWithLock})
