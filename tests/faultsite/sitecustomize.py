"""Runs at the start of every Python process that has this folder on PYTHONPATH (a test's
``dd sweep`` subprocess, its local Ray's workers): installs the faults ``$DD_TEST_FAULTS``
names (JSON of ``dd_faults.install``'s keywords) through ``dd.engine.hooks``."""

import json
import os

if os.environ.get("DD_TEST_FAULTS"):
    import dd_faults

    dd_faults.install(**json.loads(os.environ["DD_TEST_FAULTS"]))
