"""The one place that says what a results row holds.

Long format: one row per (trial, evaluation point). Columns:
- identity and provenance: ``sweep``, ``trial_id``, ``pack_id``, ``status``, ``step``,
  ``wall_time_s`` (the pack's fit or training time, shared by its trials), versions, the
  SHA-256 of the requirements.lock the installation came from (``lock_sha256``), and
  the ``platform`` (cpu, gpu) and ``device_kind`` (e.g. "NVIDIA H100 80GB HBM3") it ran on
  (the precision is the config column ``train_precision``), and the ``program_width`` that
  trained it (a narrow trial pads inside a wider program; null in older stores);
- the trial's config, flattened: ``seed``, ``data.n_train`` -> ``data_n_train``, ...;
- the metrics in ``METRICS`` (null where a metric does not apply to the model or data): the
  core metrics every kind may fill (``CORE``), then the columns of every registered
  per-evaluation measure (``dd.models.measures``), so a measure registered later is a column.
"""

from __future__ import annotations

import dataclasses
import json
import platform as _platform
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from dd.models import measures
from dd.spec.config import Trial
from dd.spec.fields import Options
from dd.spec.provenance import DD_VERSION, lock_hash

META = pa.schema(
    [
        ("sweep", pa.string()),
        ("trial_id", pa.string()),
        ("pack_id", pa.string()),
        ("status", pa.string()),
        ("step", pa.int64()),
        ("wall_time_s", pa.float64()),
        ("dd_version", pa.string()),
        ("jax_version", pa.string()),
        ("python_version", pa.string()),
        ("lock_sha256", pa.string()),
        ("platform", pa.string()),
        ("device_kind", pa.string()),
        ("partial", pa.bool_()),  # true in a running pack's rows so far, false once it ends
        # the width of the program that trained the trial (a narrow one pads inside it); a
        # store written before rows recorded it has no such column and reads it as null (with_meta)
        ("program_width", pa.int64()),
    ]
)


def with_meta(table: pa.Table) -> pa.Table:
    """``table`` with every ``META`` column, a missing one (an older store's) as nulls."""
    for field in META:
        if field.name not in table.column_names:
            table = table.append_column(field, pa.nulls(len(table), field.type))
    return table


CORE: dict[str, tuple[pa.DataType, str]] = {
    "train_mse": (
        pa.float64(),
        "mean over training examples of the squared error summed over outputs",
    ),
    "test_mse": (pa.float64(), "the same on the test set"),
    "train_error": (pa.float64(), "zero-one error on the training labels the model was fitted on"),
    "test_error": (pa.float64(), "zero-one error on the test set"),
    "coef_norm": (pa.float64(), "l2 norm of all coefficients"),
    "n_params": (pa.int64(), "number of fitted parameters"),
    "p_eff_train": (pa.float64(), "effective parameters on the training inputs (Curth et al.)"),
    "p_eff_test": (pa.float64(), "effective parameters on test inputs (Curth et al.)"),
    "population_risk": (pa.float64(), "exact expected test MSE, noise included (Gaussian data)"),
    "epoch": (pa.int64(), "epochs trained at this evaluation point"),
    "train_loss": (pa.float64(), "training objective on the training set"),
    "test_loss": (pa.float64(), "training objective on the test set"),
    "train_error_clean": (pa.float64(), "train zero-one error on the examples without label noise"),
    "train_error_noisy": (
        pa.float64(),
        "train zero-one error on the noised examples, "
        "against their noised labels (1 - memorisation)",
    ),
    "noisy_true_acc": (pa.float64(), "accuracy on the noised examples against their true labels"),
    "param_norm": (pa.float64(), "l2 norm of all trainable parameters"),
    "diverged_step": (pa.int64(), "the optimizer step whose loss was NaN or Inf (diverged trials)"),
}


class _Metrics(Mapping):
    """{metric: (pyarrow type, description)}: ``CORE`` then the registered measures' columns,
    read at each use (a measure registered after this module was imported is included)."""

    def _all(self) -> dict[str, tuple[pa.DataType, str]]:
        return CORE | dict(measures.columns())

    def __getitem__(self, name: str) -> tuple[pa.DataType, str]:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


METRICS: Mapping[str, tuple[pa.DataType, str]] = _Metrics()

STATUS_OK = "ok"


def wrong_column(schema: pa.Schema) -> str | None:
    """Why a stored file's ``schema`` cannot be rows of dd (a meta or metric column of another
    type: null and numeric widening aside), None when it can."""
    expected = {f.name: f.type for f in META} | {k: t for k, (t, _) in METRICS.items()}
    for field in schema:
        want = expected.get(field.name)
        got = field.type
        if want is None or got == want or pa.types.is_null(got):
            continue
        if _numeric(got) and _numeric(want):
            continue
        return f"column {field.name} is {got}, not {want}"
    return None


def _numeric(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def column_name(dotted: str) -> str:
    """The results column of a config path: ``model.n_features`` -> ``model_n_features``."""
    return dotted.replace(".", "_")


def flatten_config(trial: Trial, prefix: str = "") -> dict[str, Any]:
    """Every config field of a trial (or of a part, at ``prefix``) as {column name: value}.

    A user's ``options`` (``dd.spec.fields.Options``) give their JSON text (``model_options``) and
    one column per option (``model_options_depth``), so that an option swept in the grid is
    a column like any other axis; a list or mapping option's column holds its JSON text.
    """
    flat: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        for f in dataclasses.fields(obj):
            if f.metadata.get("identity") in ("program", "derived"):
                continue  # how a program compiles it, or facts (dd.spec.ids): not a config
            value = getattr(obj, f.name)
            dotted = f"{prefix}.{f.name}" if prefix else f.name
            if dataclasses.is_dataclass(value):
                walk(dotted, value)
            else:
                flat[column_name(dotted)] = value
            if isinstance(value, Options):
                for key, option in json.loads(value).items():
                    flat[column_name(f"{dotted}.{key}")] = (
                        json.dumps(option, sort_keys=True)
                        if isinstance(option, (list, dict))
                        else option
                    )

    walk(prefix, trial)
    return flat


def _config_type(value: Any) -> pa.DataType:
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    return pa.string()


def pack_table(
    *,
    sweep: str,
    pack_id: str,
    trial_ids: list[str],
    trials: list[Trial],
    rows: list[list[dict[str, Any]]],
    wall_time_s: float,
    jax_version: str,
    platform: str | None = None,
    device_kind: str | None = None,
    partial: bool = False,
) -> pa.Table:
    """Build a pack's results table; ``rows[i]`` holds trial i's rows, one per evaluation point
    (``partial``: the rows so far of a pack still running).

    Each row dict has ``step`` and ``status`` plus any of ``METRICS``.
    """
    metrics = dict(METRICS)
    records: list[dict[str, Any]] = []
    for tid, trial, trial_rows in zip(trial_ids, trials, rows, strict=True):
        config = flatten_config(trial)
        for row in trial_rows:
            unknown = set(row) - set(metrics) - {"step", "status", "program_width"}
            if unknown:
                raise ValueError(f"metrics not in the schema: {sorted(unknown)}")  # a dd bug
            records.append(
                {
                    "sweep": sweep,
                    "trial_id": tid,
                    "pack_id": pack_id,
                    "status": row.get("status", STATUS_OK),
                    "step": row.get("step", 0),
                    "wall_time_s": wall_time_s,
                    "dd_version": DD_VERSION,
                    "jax_version": jax_version,
                    "python_version": _platform.python_version(),
                    "lock_sha256": lock_hash(),
                    "platform": platform,
                    "device_kind": device_kind,
                    "partial": partial,
                    "program_width": row.get("program_width"),
                    **config,
                    **{m: row.get(m) for m in metrics},
                }
            )
    # trials of a pack share their data and model kinds, hence their config fields
    config_fields = [
        pa.field(name, _config_type(value)) for name, value in flatten_config(trials[0]).items()
    ]
    schema = pa.schema(
        list(META) + config_fields + [pa.field(m, t) for m, (t, _) in metrics.items()]
    )
    return pa.Table.from_pylist(records, schema=schema)
