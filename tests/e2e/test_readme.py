"""The README read literally: its shell commands name programs the venv (or make) has, and its
Python runs top to bottom as written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent  # the venv's bin: dd, python, ray, ...
BLOCK = re.compile(r"^ *```(?P<lang>\w*)\n(?P<body>.*?)^ *```$", re.MULTILINE | re.DOTALL)


def blocks(lang: str) -> list[str]:
    return [m["body"] for m in BLOCK.finditer(README) if m["lang"] == lang]


def shell_commands() -> list[list[str]]:
    """Each command of the bash blocks, and of the `$ ` lines in plain ones, as shlex words:
    comments dropped, continued lines and quotes across lines joined."""
    lines = [line for body in blocks("bash") for line in body.splitlines()]
    prompts = [line.strip() for body in blocks("") for line in body.splitlines()]
    lines += [line[2:] for line in prompts if line.startswith("$ ")]
    commands, pending = [], ""
    for line in lines:
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line + "\n"
        try:
            words = shlex.split(pending, comments=True)
        except ValueError:  # a quote still open: the command goes on
            continue
        if words:
            commands.append(words)
        pending = ""
    assert pending == "", f"unfinished command: {pending!r}"
    return commands


def program(words: list[str]) -> str:
    """The program a command runs, past leading VAR=value assignments."""
    return next(w for w in words if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w))


def test_every_shell_command_in_the_readme_is_the_venvs_or_make():
    commands = shell_commands()
    assert {program(c) for c in commands} >= {"make", "dd", "python"}
    unknown = [
        shlex.join(c) for c in commands if program(c) != "make" and not (BIN / program(c)).exists()
    ]
    assert unknown == [], f"not in {BIN} nor make"


def test_the_readme_says_how_to_put_the_venv_on_path():
    assert "source .venv/bin/activate" in README and "`.venv/bin/dd`" in README


@pytest.mark.slow
@pytest.mark.ray
def test_the_readme_python_runs_top_to_bottom(tmp_path):
    """As a user at the repository root runs it: here a copy of the specs it names, in a
    fresh interpreter, with the default results folder ./results."""
    code = "\n".join(blocks("python"))
    for spec in sorted(set(re.findall(r'"(sweeps/[\w.]+\.yaml)"', code))):
        (tmp_path / spec).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / spec, tmp_path / spec)
    env = {k: v for k, v in os.environ.items() if k != "DD_RESULTS"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mnist1d_20ep: ran 57 trials" in done.stdout, done.stdout[-3000:]
    assert list((tmp_path / "results" / "mnist1d_20ep" / "packs").glob("pack-*.parquet"))
    assert not (tmp_path / "results" / "mnist1d_mlp").exists(), "the default sweep is left alone"


def _sweep_calls(code: str) -> list[tuple[str, list[str]]]:
    """Each ``api.sweep(SPEC, overrides=[...])`` call of ``code``: its spec and overrides."""
    import ast

    calls = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "sweep":
            spec = ast.literal_eval(node.args[0])
            kw = {k.arg: k.value for k in node.keywords}
            overrides = ast.literal_eval(kw["overrides"]) if "overrides" in kw else []
            calls.append((spec, overrides))
    return calls


def _doctest_code(text: str) -> str:
    return "\n".join(
        line.strip()[4:].split("#")[0] for line in text.splitlines() if line.strip()[:4] == ">>> "
    )


@pytest.mark.parametrize("where", ["README.md", "dd/api.py"])
def test_the_python_examples_sweep_under_their_own_name_not_the_default_sweeps(where):
    """An example that overrides a spec writes into its own sweep: under the spec's name it
    would replace the default sweep's stored results by the overridden run's."""
    from dd.api import load_spec

    if where == "README.md":
        code = "\n".join(blocks("python"))
    else:
        import dd.api

        code = _doctest_code(dd.api.__doc__)
    calls = _sweep_calls(code)
    assert calls, f"{where}: no api.sweep call"
    for spec, overrides in calls:
        default = load_spec(ROOT / spec).name
        names = [o.split("=", 1)[1] for o in overrides if o.startswith("name=")]
        assert len(names) == 1 and names[0] != default, (where, spec, overrides)
        read = re.findall(r'api\.(?:load|curves)\("([\w.-]+)"', code)
        read += re.findall(r'sweep="([\w.-]+)"', code)
        assert read and set(read) == {names[0]}, (where, read)


def test_set_name_gives_an_overridden_run_its_own_sweep_as_the_readme_says(tmp_path):
    from dd import api

    assert "--set name=" in README
    planned = api.plan(ROOT / "sweeps/mnist1d_mlp.yaml", tmp_path, overrides=["name=mine"])
    assert planned.spec.name == "mine" and str(planned).startswith("mine: ")
    assert list(tmp_path.iterdir()) == []  # a plan writes nothing


def test_the_readmes_default_sweep_output_is_the_recorded_run():
    """The block the README says `make sweep` prints is docs/runs/mnist1d_mlp.txt's output,
    line for line (``benchmarks/record_run.py`` writes it from a real run)."""
    recorded = (ROOT / "docs" / "runs" / "mnist1d_mlp.txt").read_text()
    head, printed = recorded.split("\n\n", 1)
    assert "command: dd sweep sweeps/mnist1d_mlp.yaml" in head
    quoted = next(b for b in blocks("") if b.startswith("model_wise: "))
    assert quoted.strip().splitlines() == printed.strip().splitlines()
    spec_header = (ROOT / "sweeps" / "mnist1d_mlp.yaml").read_text()
    peak = re.search(r"test_error peak at 47 \((0\.\d+)[,)]", printed)
    assert peak and f"peak {peak[1]} at H = 47" in spec_header
