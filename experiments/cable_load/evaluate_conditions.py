"""Evaluate a trained cable-load policy under the paper's robustness conditions.

    python experiments/cable_load/evaluate_conditions.py RUN_DIR [--episodes 100] [--fail]

Runs ``scripts/evaluate.py`` once per condition (deterministic and sampled actions, 100
episodes each by default) and writes ``RUN_DIR/eval/conditions.md`` and ``.json``: success
rate (final position error < 0.1 m and orientation error < 10 deg, no termination),
survival rate (no termination in the 20 s), final errors, return and episode length, each
with a 95% confidence interval. ``--fail`` adds "one MAV lost at
5 s" in both failure models (meant for 4-MAV teams), the dead weight also under goals high
enough for it to hang clear of the ground.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from marl.checkpoint import Checkpointer
from marl.cli import evaluate_main
from marl.config import load_run_config

NOMINAL_MASS = 1.4
# m: goal heights under which a MAV hanging as dead weight clears the ground
HIGH_GOALS = (1.2, 1.5)
# the conditions' names (the rows of conditions.md, the keys of conditions.json)
NOMINAL = "nominal"
PUSH = "constant push, 15.4% of the load's weight"
# The reference does not say how its heterogeneous member differs: our choice.
HETEROGENEOUS = "heterogeneous member (mav_0: mass x1.25, thrust x0.8, gains x0.6)"
LOST_RELEASED = "one MAV lost at 5 s (rotors stop, cable released)"
LOST_DEAD_WEIGHT = "one MAV lost at 5 s (rotors spin down, it hangs as dead weight)"
LOST_DEAD_WEIGHT_HIGH = "one MAV lost at 5 s (dead weight), goals {}-{} m high".format(*HIGH_GOALS)
# statistic -> (column, format)
STATS = {
    "success": ("success", "{:.0%}"),
    "survived": ("survived (no termination)", "{:.0%}"),
    "position_error": ("final position error (m)", "{:.3f}"),
    "orientation_error_deg": ("final orientation error (deg)", "{:.1f}"),
    "return": ("return per agent", "{:.1f}"),
    "length": ("episode length (steps)", "{:.0f}"),
}


# Each condition is the nominal task with one change, whatever a run trained with: no random
# failures or pushes (a failure- and push-aware run's options would otherwise stay on).
NOMINAL_TASK = {"fail_prob": 0.0, "disturbance_range": None}


def conditions(fail: bool) -> dict[str, dict]:
    """condition -> the environment options it evaluates with."""
    low, high = 0.7 * NOMINAL_MASS, 1.3 * NOMINAL_MASS
    table = {
        NOMINAL: {},
        f"load mass -30% ({low:.2f} kg)": {"load_mass_range": [low, low]},
        f"load mass +30% ({high:.2f} kg)": {"load_mass_range": [high, high]},
        PUSH: {"disturbance": 0.154},
        HETEROGENEOUS: {
            "member_mass": 1.25,
            "member_thrust": 0.8,
            "member_gains": 0.6,
        },
    }
    if fail:
        table[LOST_RELEASED] = {"fail_step": 500, "fail_mode": "released"}
        table[LOST_DEAD_WEIGHT] = {
            "fail_step": 500,
            "fail_mode": "dead_weight",
        }
        # It hangs about 1 m below the load's centre (its 1 m cable from a top corner, which
        # dips when the load tilts that way), so under most goals (0.5-1.5 m high) it reaches
        # the ground, which ends the episode like any contact: the same with goals high
        # enough for it to hang clear, if the team holds the load there and level.
        table[LOST_DEAD_WEIGHT_HIGH] = {
            "fail_step": 500,
            "fail_mode": "dead_weight",
            "goal_height": list(HIGH_GOALS),
        }
    return {name: {**NOMINAL_TASK, **options} for name, options in table.items()}


def format_table(
    title: str, results: dict, stats: dict = STATS, what: str = "condition"
) -> list[str]:
    """``results``: row -> ``scripts/evaluate.py``'s results; ``stats``: as ``STATS``."""
    lines = [
        title,
        "",
        f"| {what} | actions | " + " | ".join(col for col, _ in stats.values()) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in stats) + " |",
    ]
    for name, res in results.items():
        for mode in ("deterministic", "stochastic"):
            cells = [
                f"{fmt.format(res[mode][k][0])} ± {fmt.format(res[mode][k][1])}"
                for k, (_, fmt) in stats.items()
            ]
            lines.append(f"| {name} | {mode} | " + " | ".join(cells) + " |")
    return lines


def evaluate_once(run: Path, tag: str, episodes: int, options: dict, *overrides: str) -> dict:
    """``scripts/evaluate.py`` on ``run``'s latest checkpoint with ``options`` on top of the
    run's environment options and ``overrides`` (e.g. ``env_name=``) -> ``run/eval/<tag>.json``,
    reused when it holds the same checkpoint, options in effect, overrides and number of
    episodes, with every statistic of ``STATS``."""
    cfg = load_run_config(run)
    checkpoints = Checkpointer(run / "checkpoints", cfg.keep_checkpoints, create=False)
    latest = checkpoints.latest()
    checkpoints.close()
    saved = run / "eval" / f"{tag}.json"
    old = json.loads(saved.read_text()) if saved.exists() else {}
    fields = ("episodes_per_seed", "checkpoint", "env_options", "overrides")
    measured = STATS.keys() <= old.get("deterministic", {}).keys()
    in_effect = json.loads(json.dumps({**cfg.env.options, **options}))  # tuples as lists
    if measured and [old.get(f) for f in fields] == [episodes, latest, in_effect, [*overrides]]:
        return old
    flags = [f"env_options.{k}={json.dumps(v)}" for k, v in options.items()]
    evaluate_main(
        [f"run={run}", f"episodes={episodes}", "gif_episodes=1", f"tag={tag}", *overrides, *flags]
    )
    results = {**json.loads(saved.read_text()), "overrides": [*overrides]}
    saved.write_text(json.dumps(results, indent=2))
    return results


def evaluate(
    run: Path, episodes: int = 100, fail: bool = False, *overrides: str, tag: str = "condition"
) -> dict:
    """Every condition on ``run``'s latest checkpoint (``evaluate_once``, tags ``<tag>_<i>``;
    ``overrides`` for each, e.g. an intervention on the channel) -> condition ->
    ``scripts/evaluate.py``'s results; also ``run/eval/<tag>s.md`` and ``.json``."""
    cfg = load_run_config(run)
    results = {
        name: evaluate_once(run, f"{tag}_{i}", episodes, options, *overrides)
        for i, (name, options) in enumerate(conditions(fail).items())
    }
    checkpoint = next(iter(results.values()))["checkpoint"]
    title = (
        f"{' '.join((cfg.env.name, str(cfg.env.options), *overrides))}, checkpoint {checkpoint}, "
        f"{episodes} episodes per seed, condition and mode (mean ± 95% CI)"
    )
    lines = format_table(title, results)
    out = run / "eval" / f"{tag}s"
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    print("\n".join(lines))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    evaluate(Path(args.run), args.episodes, args.fail)


if __name__ == "__main__":
    main()
