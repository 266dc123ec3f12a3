"""How many programs a sweep compiles follows the measured compile-versus-compute costs
(dd.plan.buckets), with the family's own rule where the table has no entry."""

import pytest

from dd.plan import buckets, packs
from dd.plan.buckets import CompileCosts, choose, step_flops, steps_of
from dd.plan.sweep import parse_spec

WIDTHS = [2, 4, 8, 16, 100, 300]


def mlp_spec(widths=WIDTHS, seeds=2, epochs=50):
    return parse_spec(
        {
            "name": "buckets",
            "data": {"name": "gaussian", "n_train": 64, "n_test": 64, "dim": 8},
            "model": {"name": "mlp", "depth": 1, "width": 2},
            "train": {"epochs": epochs, "batch_size": 16, "eval_points": 2, "objective": "mse"},
            "grid": {"model.width": widths, "seed": list(range(seeds))},
        }
    )


def test_compiles_that_cost_nothing_give_every_width_its_own_program():
    trials = list(mlp_spec().trials)
    free = CompileCosts(compile_s=0.0, step_overhead_s=0.0, flops_per_s=1e9)
    assert choose(trials, free) == {w: w for w in WIDTHS}


def test_compiles_that_cost_more_than_any_training_give_one_program():
    trials = list(mlp_spec().trials)
    dear = CompileCosts(compile_s=1e9, step_overhead_s=0.0, flops_per_s=1e9)
    assert choose(trials, dear) == dict.fromkeys(WIDTHS, 300)


def test_the_cut_is_the_least_estimated_seconds():
    """Against every way of cutting the sorted widths into buckets (each compiled at its
    widest), the chosen one costs the least; with a compile worth two 16-wide replicas'
    training it is neither one program per width nor one for all."""
    trials = list(mlp_spec().trials)
    steps = steps_of(trials[0])
    compile_s = 2 * steps * step_flops(trials[0], 16) / 1e9
    chosen = choose(trials, CompileCosts(compile_s, 0.0, 1e9))

    def seconds(program: dict[int, int]) -> float:
        per_step = sum(2 * step_flops(trials[0], program[w]) for w in WIDTHS) / 1e9
        return len(set(program.values())) * compile_s + steps * per_step

    cuttings = []
    for mask in range(2 ** (len(WIDTHS) - 1)):  # bit i: a bucket ends after WIDTHS[i]
        program, start = {}, 0
        for i in range(len(WIDTHS)):
            if i == len(WIDTHS) - 1 or mask >> i & 1:
                program.update(dict.fromkeys(WIDTHS[start : i + 1], WIDTHS[i]))
                start = i + 1
        cuttings.append(program)
    assert seconds(chosen) == pytest.approx(min(map(seconds, cuttings)))
    assert 1 < len(set(chosen.values())) < len(WIDTHS)


def test_a_missing_table_entry_keeps_the_family_rule(monkeypatch):
    monkeypatch.setattr(packs, "costs", lambda family, backend: None)
    spec = mlp_spec()
    widths = {p.key.model.width for p in packs.make_packs(list(spec.trials), spec.resources)}
    assert widths == {64, 100, 300}, "the MLP rule: widths below 64 share a 64-wide program"


def test_packs_train_in_the_chosen_programs(monkeypatch):
    cost = CompileCosts(compile_s=1e9, step_overhead_s=0.0, flops_per_s=1e9)
    monkeypatch.setattr(packs, "costs", lambda family, backend: cost)
    spec = mlp_spec()
    made = packs.make_packs(list(spec.trials), spec.resources)
    assert len(made) == 1 and made[0].key.model.width == 300
    assert sorted(t.model.width for t in made[0].trials) == sorted(WIDTHS * 2)


def test_the_shipped_cpu_table_is_complete():
    """`make bench` (benchmarks/bucket_costs.py) measured the MLP's costs on this backend."""
    cost = buckets.costs("mlp", "cpu")
    assert cost is not None and cost.compile_s > 0 and cost.flops_per_s > 0


@pytest.mark.parametrize("gpus", [0.0, 1.0])
def test_backend_follows_the_resources(gpus):
    assert buckets.backend_of(gpus) == ("gpu" if gpus else "cpu")
