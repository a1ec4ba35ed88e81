"""Figure-8 tracking with the cable team: a hover-trained policy zero-shot (the reference's
claim) beside a tracking-trained one.

    python experiments/cable_load/figure8.py RUN [RUN ...] [--episodes 100]

Every RUN flies ``cable_load/track`` (a figure-8 2 m x 1 m wide, one loop per 20 s, at 1 m:
``envs/cable_load/track.py``) with its own number of MAVs and range of load masses (the only thing that differs between
greedy episodes: the figure-8 starts at rest at its first point), no failures and no pushes:
``scripts/evaluate.py`` with ``--episodes`` greedy and sampled episodes per seed
(``RUN/eval/figure8.json`` and a GIF, ``RUN/eval/figure8.gif``) gives the tracking RMSE of the
load's position and orientation over each episode and the episode's length; ``figure8.md`` /
``.json`` here collect them (mean ± 95% CI over all episodes), and ``figure8_path.png`` shows
the reference and the load's path in one greedy episode of each run's first seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
from evaluate_conditions import NOMINAL_TASK, format_table

from marl.checkpoint import Checkpointer
from marl.cli import evaluate_main
from marl.config import load_run_config
from marl.evaluate import Evaluator
from marl.plot import plt
from marl.rollout import make_env
from marl.train import build

HERE = Path(__file__).resolve().parent
TRACK = "cable_load/track"
# statistic -> (column, format)
STATS = {
    "tracking_rmse_position": ("position RMSE (m)", "{:.3f}"),
    "tracking_rmse_orientation_deg": ("orientation RMSE (deg)", "{:.1f}"),
    "length": ("episode length (steps of 2000)", "{:.0f}"),
}


def track_options(run: Path) -> dict:
    """The run's team and load masses on the figure-8, without the failures or pushes it
    may have trained with."""
    env = make_env(load_run_config(run))
    return {
        "num_agents": env.num_agents,
        "load_mass_range": env.load_mass_range,
        "trajectory": "figure8",
        **NOMINAL_TASK,
    }


def evaluate(run: Path, episodes: int) -> dict:
    """``scripts/evaluate.py`` on the figure-8: ``run/eval/figure8.json`` (and ``.gif``)."""
    options = [f"env_options.{k}={json.dumps(v)}" for k, v in track_options(run).items()]
    evaluate_main(
        [f"run={run}", f"env_name={TRACK}", f"episodes={episodes}", "gif_episodes=1"]
        + ["tag=figure8", *options]
    )
    return json.loads((run / "eval" / "figure8.json").read_text())


def path(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """One greedy figure-8 episode of the run's first seed: the load's and the reference's
    positions, ``[T, 3]`` each (the reference is the goal the load was given at each step)."""
    cfg = load_run_config(run)
    cfg.env.name, cfg.env.options = TRACK, {**cfg.env.options, **track_options(run)}
    env, policy, learner, template = build(cfg)
    checkpoints = Checkpointer(run / "checkpoints", cfg.keep_checkpoints, create=False)
    state, _ = checkpoints.restore_policy(template, None)
    evaluator = Evaluator(cfg, env, policy, run / "eval", learner.num_updates)
    args = (state.params, state.method_state, state.runner.norm, state.update)
    _, episodes = evaluator.record(*jax.tree.map(lambda x: x[:1], args), n=1)
    length = int(episodes.valid[:, 0].sum())
    states = jax.tree.map(lambda x: x[:length, 0], episodes.env_state.env_state)
    return states.bodies.pos[:, 0], states.goal_pos


def plot(paths: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> None:
    fig, (top, time) = plt.subplots(1, 2, figsize=(11, 4.2))
    reference = next(iter(paths.values()))[1]
    top.plot(reference[:, 0], reference[:, 1], "k--", lw=1, label="reference")
    for label, (load, _) in paths.items():
        top.plot(load[:, 0], load[:, 1], lw=1.2, label=label)
        t = np.arange(1, len(load) + 1) / 100  # policy steps at 100 Hz
        for axis, style in zip("xyz", ("-", "--", ":"), strict=True):
            time.plot(t, load[:, "xyz".index(axis)], style, lw=1, label=f"{label}: {axis}")
    t = np.arange(1, len(reference) + 1) / 100
    for axis in range(3):
        time.plot(t, reference[:, axis], "k", lw=0.6, alpha=0.6)
    top.set(xlabel="x (m)", ylabel="y (m)", title="load path, top view", aspect="equal")
    time.set(xlabel="time (s)", ylabel="position (m)", title="x, y, z (black: reference)")
    top.legend(fontsize=7)
    time.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    runs = {Path(r).name: Path(r) for r in args.runs}
    results = {name: evaluate(run, args.episodes) for name, run in runs.items()}
    title = f"Figure-8: {args.episodes} episodes per seed and mode (mean ± 95% CI over episodes)"
    lines = format_table(title, results, STATS, "run")
    (HERE / "figure8.md").write_text("\n".join(lines) + "\n")
    (HERE / "figure8.json").write_text(json.dumps(results, indent=2))
    plot({name: path(run) for name, run in runs.items()}, HERE / "figure8_path.png")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
