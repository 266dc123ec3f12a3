"""``dd status`` counts what the current plan holds: a failure of an earlier spec version is
said apart, and ``--profile`` says which profiles it left out (damaged, or of a pack whose
file was quarantined) rather than dropping them unsaid (issue 32, item 8)."""

from __future__ import annotations

import json

from dd.cli import main
from dd.store.sweep import SweepStore
from helpers import TINY_GAUSSIAN, store_trials

SMALL = {**TINY_GAUSSIAN, "grid": {"model.n_features": [2, 5], "seed": [0]}}
PROFILE = {
    "pack_id": "p0",
    "trials": 2,
    "phases": {"train": 1.5},
    "programs_compiled": 1,
    "bytes_to_device": 1000,
    "bytes_to_host": 10,
}


def test_a_failed_pack_of_an_earlier_spec_version_is_not_a_current_failure(tmp_path, capsys):
    store_trials(tmp_path, SMALL)
    store = SweepStore(tmp_path, "tiny")
    store.write_failure("old", ["a" * 16, "b" * 16], "RuntimeError: from the spec before")
    assert main(["status", "tiny", "--results", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("2 done, 0 missing, 0 failed"), lines
    (old,) = [line for line in lines if "pack old" in line]
    assert "earlier version of the spec" in old and "RuntimeError" in old, lines
    assert not old.strip().startswith("failed pack old ("), "not listed as a current failure"


def test_profile_says_which_profiles_it_left_out(tmp_path, capsys):
    store_trials(tmp_path, SMALL)
    store = SweepStore(tmp_path, "tiny")
    store.write_profile("p0", PROFILE)
    store.write_profile("gone", {**PROFILE, "pack_id": "gone"})  # its pack file quarantined
    store.write_profile("cut", {**PROFILE, "pack_id": "cut"})
    cut = store.dir / "profiles" / "pack-cut.json"
    cut.write_bytes(cut.read_bytes()[:30])  # truncated
    assert main(["status", "tiny", "--results", str(tmp_path), "--profile"]) == 0
    out, err = capsys.readouterr()
    rows = [line.split()[0] for line in out.splitlines()[1:]]
    assert "p0" in rows and "gone" not in rows and "cut" not in rows, out
    assert "pack-cut.json" in err, err
    assert "2 profiles left out" in out, out
    assert "gone" in out and "no pack file" in out, out
    assert (
        main(["status", "tiny", "--results", str(tmp_path), "--profile", "--format", "json"]) == 0
    )
    assert [r["pack_id"] for r in json.loads(capsys.readouterr().out)] == ["p0"]
