"""Hyperparameter sweeps in one program (``sweep.*``): a sweep equals its separate runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException

from marl.checkpoint import Checkpointer
from marl.train import train

LRS = [1e-4, 3e-4, 1e-3]
ROOT = Path(__file__).resolve().parents[1]


def test_a_learning_rate_sweep_equals_the_separate_runs(tiny):
    """3 learning rates x 2 seeds in one program: each configuration's seeds end with the
    parameters of the run that sets its learning rate in the config."""
    sweep = train(tiny("sweep", "num_seeds=2", f"sweep.algo.lr=[{','.join(map(str, LRS))}]"))
    swept = Checkpointer(sweep / "checkpoints", 3).load()
    assert swept["hyper"]["lr"].tolist() == pytest.approx([lr for lr in LRS for _ in (0, 1)])
    for p, lr in enumerate(LRS):
        alone = Checkpointer(
            train(tiny(f"lr{p}", "num_seeds=2", f"algo.lr={lr}")) / "checkpoints", 3
        )
        jax.tree.map(
            lambda a, b, p=p: np.testing.assert_array_equal(a[2 * p : 2 * p + 2], b),
            swept["params"],
            alone.load()["params"],
        )
    # Each configuration is laid out as a run of its own, with a table and the curves.
    points = [sweep / "points" / f"lr={lr:g}" for lr in LRS]
    for point, lr in zip(points, LRS, strict=True):
        config = (point / "config.yaml").read_text()
        assert f"lr: {lr}" in config and "lr: null" in config  # the value, not a sweep
        records = [json.loads(x) for x in (point / "metrics.jsonl").read_text().splitlines()]
        assert len(records) == 4 and len(records[0]["return/seeds"]) == 2
        assert (
            len(
                json.loads((point / "summary.json").read_text())["eval"]["deterministic"][
                    "per_seed"
                ]["return"]
            )
            == 2
        )
    table = (sweep / "sweep.md").read_text()
    assert all(f"`lr={lr:g}`" in table for lr in LRS) and (sweep / "sweep.png").exists()
    record = json.loads((sweep / "metrics.jsonl").read_text().splitlines()[-1])
    assert {f"return/lr={lr:g}" for lr in LRS} <= set(record)
    # scripts/aggregate.py reads the sweep as its configurations: methods by algo.lr.
    out = sweep / "aggregate"
    subprocess.run(
        [sys.executable, "scripts/aggregate.py", str(sweep), "--out", str(out)],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    table = (sweep / "aggregate.md").read_text()
    assert "Methods by `algo.lr`" in table
    assert all(f"| algo.lr={lr} | 2 |" in table for lr in LRS)
    assert "P(X > Y)" in table and (sweep / "aggregate.png").exists()


def test_a_grid_sweep_is_every_combination(tiny):
    cfg = tiny("grid", "sweep.algo.lr=[1e-4,1e-3]", "sweep.algo.ent_coef=[0.0,0.01,0.1]")
    from marl.config import sweep_members

    assert list(sweep_members(cfg)) == [
        f"lr={lr},ent_coef={e}" for lr in ("0.0001", "0.001") for e in ("0", "0.01", "0.1")
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sweep.algo.num_steps=[8,16]", r"Could not override 'sweep.algo.num_steps'"),
        ("+sweep.algo.num_steps=[8,16]", r"Key 'num_steps' not in 'SweepAlgo'"),
        ("+sweep.policy.hidden=[8]", r"Key 'policy' not in 'SweepConfig'"),
        ("sweep.algo.lr=0.1", r"Error merging override sweep.algo.lr=0.1"),
        ("sweep.algo.lr=[fast]", r"Error merging override sweep.algo.lr=\[fast\]"),
        ("sweep.algo.lr=[]", r"sweep.algo.lr=\[\] \(give one or more values\)"),
        ("sweep.algo.gamma=[0.9,1.5]", r"sweep.algo.gamma: 1.5 \(must be in \[0, 1\]\)"),
    ],
)
def test_bad_sweeps_are_refused(tiny, override, message):
    with pytest.raises(
        (ValueError, ConfigCompositionException, OmegaConfBaseException), match=message
    ):
        tiny("bad", override)


def test_compare_is_reproducible_and_orders_methods():
    """rliable's bootstrap in ``marl.compare.compare`` runs on fixed random numbers: a report
    is the same every time; a method better on every seed improves with probability 1."""
    from marl.compare import compare

    rng = np.random.default_rng(0)
    scores = {"a": rng.normal(1.0, 0.1, 5), "b": rng.normal(0.0, 0.1, 5)}
    first, again = compare(scores, [("a", "b")], reps=200), compare(scores, [("a", "b")], reps=200)
    assert first == again
    assert first["probability_of_improvement"]["a > b"]["p"] == 1.0
    lo, hi = first["methods"]["a"]["iqm_ci"]
    assert lo <= first["methods"]["a"]["iqm"] <= hi
