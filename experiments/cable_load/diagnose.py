"""Why a cable-team run's greedy episodes end, and where its survivors hold the load.

    python experiments/cable_load/diagnose.py RUN [RUN ...] [--episodes 32] [--out diagnosis]

Each RUN (e.g. ``experiments/cable_load/team/mappo_nominal``) flies ``--episodes`` greedy
episodes per seed, every state recorded, under two conditions of ``evaluate_conditions.py``
(nominal; one MAV lost at 5 s, released). ``<out>.md`` / ``.json`` here give, per seed:

- how the episodes end: the share of each termination cause (the first of
  ``CableLoadHover.terminations`` that holds at the last step), or ``survived`` (20 s);
- where the survivors hold the load: its mean final offset from the goal, x, y and z (m);
- with a MAV lost: how far the load falls within 2 s of the failure (median and 90th
  percentile over the episodes that reach it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
from evaluate_conditions import LOST_RELEASED, NOMINAL, conditions

import envs
from marl.checkpoint import Checkpointer
from marl.config import load_run_config
from marl.evaluate import Evaluator
from marl.train import build

HERE = Path(__file__).resolve().parent
CONDITIONS = {name: conditions(fail=True)[name] for name in (NOMINAL, LOST_RELEASED)}
AFTER = 200  # policy steps (2 s) after a failure over which the load's fall is measured


def fly(run: Path, options: dict, episodes: int) -> list:
    """Per seed, ``episodes`` greedy episodes of ``run`` with ``options`` on top of its own:
    (the raw environment, the recorded states ``[T, E, ...]``, ``valid`` ``[T, E]``)."""
    cfg = load_run_config(run)
    cfg.env.options = {**cfg.env.options, **options}
    env, policy, learner, template = build(cfg)
    checkpoints = Checkpointer(run / "checkpoints", cfg.keep_checkpoints, create=False)
    state, _ = checkpoints.restore_policy(template, None)
    checkpoints.close()
    evaluator = Evaluator(cfg, env, policy, run / "eval", learner.num_updates)
    args = (state.params, state.method_state, state.runner.norm, state.update)
    raw = envs.make(cfg.env.name, **cfg.env.options)
    flown = []
    for s in range(state.update.shape[0]):
        _, ep = evaluator.record(*jax.tree.map(lambda x, s=s: x[s : s + 1], args), n=episodes)
        flown.append((raw, ep.env_state.env_state, ep.valid))
    return flown


def diagnose(env, states, valid: np.ndarray) -> dict:
    """One seed's episodes -> how they end, the survivors' final offset, the fall after a
    failure."""
    last = valid.sum(0) - 1  # [E]
    final = jax.tree.map(lambda x: x[last, np.arange(len(last))], states)
    ended = jax.device_get(jax.vmap(env.terminations)(final))  # cause -> [E]
    causes = np.array(list(ended))
    fired = np.stack([ended[c] for c in causes])  # [causes, E]
    first = np.where(fired.any(0), causes[fired.argmax(0)], "survived")
    offset = final.bodies.pos[:, 0] - final.goal_pos  # [E, 3] load - goal
    survived = first == "survived"
    out = {
        "ends": {
            c: float(np.mean(first == c)) for c in ["survived", *causes] if (first == c).any()
        },
        "final_offset": offset[survived].mean(0).tolist() if survived.any() else None,
    }
    step = int(final.fail_step[0])
    if step >= 0:
        reach = last >= step + AFTER
        z = states.bodies.pos[:, :, 0, 2]  # [T, E] load height
        fall = z[step - 1, reach] - z[step : step + AFTER, reach].min(0)
        if reach.any():
            out["fall"] = {"median": float(np.median(fall)), "p90": float(np.quantile(fall, 0.9))}
    return out


def markdown(results: dict, episodes: int) -> list[str]:
    lines = [f"# Cable team: how greedy episodes end ({episodes} per seed)", ""]
    for run, by_condition in results.items():
        for condition, seeds in by_condition.items():
            lines += [f"## `{run}`, {condition}", ""]
            lines += ["| seed | ends | final offset x, y, z (m) | fall in 2 s after the loss (m) |"]
            lines += ["| ---: | --- | --- | --- |"]
            for i, d in enumerate(seeds):
                ends = ", ".join(f"{c} {p:.0%}" for c, p in d["ends"].items())
                off = (
                    "-"
                    if d["final_offset"] is None
                    else ", ".join(f"{v:+.2f}" for v in d["final_offset"])
                )
                fall = d.get("fall")
                drop = f"median {fall['median']:.2f}, p90 {fall['p90']:.2f}" if fall else "-"
                lines.append(f"| {i} | {ends} | {off} | {drop} |")
            lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--out", default="diagnosis")
    args = parser.parse_args()
    results = {}
    for run in map(Path, args.runs):
        name = str(run.resolve().relative_to(HERE))
        results[name] = {
            condition: [diagnose(*seed) for seed in fly(run, options, args.episodes)]
            for condition, options in CONDITIONS.items()
        }
    lines = markdown(results, args.episodes)
    (HERE / f"{args.out}.json").write_text(json.dumps(results, indent=2))
    (HERE / f"{args.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
