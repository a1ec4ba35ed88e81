"""Figure-8 tracking with the cable team: a hover-trained policy zero-shot (the reference's
claim) beside a tracking-trained one.

    python experiments/cable_load/figure8.py RUN [RUN ...] [--episodes 100] [--leads 0 1]

Every RUN flies ``cable_load/track`` (a figure-8 2 m x 1 m wide, one loop per 20 s, at 1 m:
``envs/cable_load/track.py``) with its own number of MAVs and range of load masses (the only thing that differs between
greedy episodes: the figure-8 starts at rest at its first point), no failures and no pushes,
once for each of ``--leads`` (s; the goal shown that far ahead of the reference, a feed-forward
for a hover-trained policy that trails a moving goal): ``scripts/evaluate.py`` with
``--episodes`` greedy and sampled episodes per seed (``RUN/eval/figure8[_lead<s>].json`` and a
GIF, reused while the run's checkpoint and the options stay the same) gives the tracking
RMSE of the load's position and orientation over each episode and the episode's length; ``figure8.md`` / ``.json`` here collect them (mean ± 95% CI over all
episodes), and ``figure8_path.png`` shows the reference, the load's path and its distance
from the reference in one greedy episode of each row's first seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
from evaluate_conditions import NOMINAL_TASK, evaluate_once, format_table

from marl.checkpoint import Checkpointer
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


def track_options(run: Path, lead: float) -> dict:
    """The run's team and load masses on the figure-8 with the goal ``lead`` s ahead,
    without the failures or pushes it may have trained with."""
    env = make_env(load_run_config(run))
    return {
        "num_agents": env.num_agents,
        "load_mass_range": env.load_mass_range,
        "trajectory": "figure8",
        "lead": lead,
        **NOMINAL_TASK,
    }


def evaluate(run: Path, episodes: int, lead: float) -> dict:
    """``scripts/evaluate.py`` on the figure-8: ``run/eval/figure8[_lead<s>].json`` (and
    ``.gif``), reused when it is up to date."""
    tag = f"figure8_lead{lead:g}" if lead else "figure8"
    return evaluate_once(run, tag, episodes, track_options(run, lead), f"env_name={TRACK}")


def path(run: Path, lead: float) -> tuple[np.ndarray, np.ndarray]:
    """One greedy figure-8 episode of the run's first seed: the load's and the reference's
    positions, ``[T, 3]`` each."""
    cfg = load_run_config(run)
    cfg.env.name, cfg.env.options = TRACK, {**cfg.env.options, **track_options(run, lead)}
    env, policy, learner, template = build(cfg)
    checkpoints = Checkpointer(run / "checkpoints", cfg.keep_checkpoints, create=False)
    state, _ = checkpoints.restore_policy(template, None)
    evaluator = Evaluator(cfg, env, policy, run / "eval", learner.num_updates)
    args = (state.params, state.method_state, state.runner.norm, state.update)
    _, episodes = evaluator.record(*jax.tree.map(lambda x: x[:1], args), n=1)
    length = int(episodes.valid[:, 0].sum())
    states = jax.tree.map(lambda x: x[:length, 0], episodes.env_state.env_state)
    reference, _ = jax.vmap(env.reference)(states.step * env.dt)
    return states.bodies.pos[:, 0], reference


def plot(paths: dict[str, tuple[np.ndarray, np.ndarray]], out: Path) -> None:
    """Top view of each row's load path beside its distance from the reference over time."""
    fig, (top, time) = plt.subplots(1, 2, figsize=(11, 4.2))
    reference = next(iter(paths.values()))[1]
    top.plot(reference[:, 0], reference[:, 1], "k--", lw=1, label="reference")
    for label, (load, ref) in paths.items():
        top.plot(load[:, 0], load[:, 1], lw=1.2, label=label)
        t = np.arange(1, len(load) + 1) / 100  # policy steps at 100 Hz
        time.plot(t, np.linalg.norm(load - ref, axis=-1), lw=1, label=label)
    top.set(xlabel="x (m)", ylabel="y (m)", title="load path, top view", aspect="equal")
    time.set(xlabel="time (s)", ylabel="m", title="load's distance from the reference")
    top.legend(fontsize=7)
    time.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--leads", type=float, nargs="+", default=[0.0])
    args = parser.parse_args()
    runs = {  # row -> (run, lead)
        f"{Path(r).name}, lead {lead:g} s" if lead else Path(r).name: (Path(r), lead)
        for r in args.runs
        for lead in args.leads
    }
    results = {name: evaluate(run, args.episodes, lead) for name, (run, lead) in runs.items()}
    title = f"Figure-8: {args.episodes} episodes per seed and mode (mean ± 95% CI over episodes)"
    lines = format_table(title, results, STATS, "run")
    (HERE / "figure8.md").write_text("\n".join(lines) + "\n")
    (HERE / "figure8.json").write_text(json.dumps(results, indent=2))
    plot({name: path(*run) for name, run in runs.items()}, HERE / "figure8_path.png")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
