"""Hyperparameter sweeps in one program.

``sweep.algo.lr=[1e-4,3e-4,1e-3] num_seeds=2`` trains every swept value (every combination,
when several keys are swept) x every seed as the members of one vmapped run.
``TrainState.hyper`` holds each member's values, which the update reads as traced numbers, so
a configuration's seeds train exactly as the run that sets those values in its config would.
Members are configuration-major: member ``p x num_seeds + s`` is seed ``s`` of configuration
``p`` (``config.sweep_points``' order).

The run directory is a normal one: one checkpoint, one resume, ``metrics.jsonl`` with a column
per member (and ``return/<label>`` per configuration, also sent to W&B). When the run
finishes, ``write_points`` lays each configuration out as a run directory of its own,
``points/<label>/`` (``config.yaml`` with its values set, ``metrics.jsonl``,
``eval/history.jsonl``, ``summary.json``), so that plots and ``scripts/aggregate.py`` read
them like any runs, and writes ``sweep.md`` (a table) and ``sweep.png`` (the curves).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from marl.config import Config, SweepConfig, sweep_members, sweep_points, to_yaml
from marl.evaluate import MODES, mean_ci
from marl.logging import jsonable, seed_mean


def _records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _split_metrics(record: dict[str, Any], members: slice) -> dict[str, Any]:
    out = {"update": record["update"], "env_steps": record["env_steps"]}
    for key, values in record.items():
        if key.endswith("/seeds"):
            seeds = np.array(values, np.float64)[members]  # null (no episode ended) -> NaN
            out[key.removesuffix("/seeds")] = jsonable(seed_mean(seeds))
            out[key] = jsonable(seeds)
    return out


def _split_eval(record: dict[str, Any], members: slice) -> dict[str, Any]:
    """An evaluation of the members' seeds: mean ± 95% CI over the seeds' mean results (the
    policy's own statistics are pooled over all members, and left out)."""
    out = {"update": record["update"], "seeds": members.stop - members.start}
    for mode in MODES:
        per_seed = {k: v[members] for k, v in record[mode]["per_seed"].items()}
        out[mode] = {k: mean_ci(v) for k, v in per_seed.items()} | {"per_seed": per_seed}
    return out


def write_points(run_dir: Path, cfg: Config) -> Path:
    """Each configuration of a finished sweep run as ``points/<label>/``, the table
    ``sweep.md`` and the curves ``sweep.png`` -> the table's path."""
    from marl.compare import final_scores
    from marl.plot import plot_methods

    metrics = _records(run_dir / "metrics.jsonl")
    evals = _records(run_dir / "eval" / "history.jsonl")
    rows, dirs = [], {}
    for point, (name, members) in zip(sweep_points(cfg), sweep_members(cfg).items(), strict=True):
        out = dirs[name] = run_dir / "points" / name
        (out / "eval").mkdir(parents=True, exist_ok=True)
        values = {k.removeprefix("algo."): v for k, v in point.items()}
        own = replace(cfg, algo=replace(cfg.algo, **values), sweep=SweepConfig(), run_dir=str(out))
        (out / "config.yaml").write_text(to_yaml(own))
        lines = [_split_metrics(r, members) for r in metrics]
        (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        history = [_split_eval(r, members) for r in evals]
        (out / "eval" / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
        summary = {
            "updates": lines[-1]["update"],
            "env_steps": lines[-1]["env_steps"],
            "final": lines[-1],
            "eval": history[-1] if history else None,
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        train, greedy = mean_ci(final_scores([out])), summary["eval"]
        cell = (
            "n/a"
            if greedy is None
            else "{:.2f} ± {:.2f}".format(*greedy["deterministic"]["return"])
        )
        rows.append(f"| `{name}` | {train[0]:.2f} ± {train[1]:.2f} | {cell} |")
    table = run_dir / "sweep.md"
    table.write_text(
        "\n".join(
            [
                f"# Sweep: {len(dirs)} configurations x {cfg.num_seeds} seed(s), "
                f"{metrics[-1]['env_steps']:,} env-steps per seed",
                "",
                "| configuration | training return, last 10% of updates | greedy evaluation return |",
                "| --- | ---: | ---: |",
                *rows,
                "",
                "Mean ± 95% CI over seeds; each configuration's run: `points/<configuration>/`.",
                "",
            ]
        )
    )
    plot_methods({k: [d] for k, d in dirs.items()}, run_dir / "sweep.png", "sweep")
    return table
