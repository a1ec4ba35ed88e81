"""The reference's claims (Zeng et al., CoRL 2025), one row each, reproduced or not:
``claims.md`` / ``claims.json``.

    python experiments/cable_load/claims.py train [--methods hover3 track] [--chunks K]
    python experiments/cable_load/claims.py report [--episodes 100]

``train`` trains the runs that only the claims need, 3 vmapped seeds each at ``team.py``'s
CPU settings, into ``claims/<run>/`` (resumable like ``team.py train``):

- ``hover3``: MAPPO without communication, 3 MAVs, nominal task, 40M env-steps per seed;
- ``track``: ``team.py``'s ``mappo_nominal`` (4 MAVs) trained on for 10M env-steps per seed
  on ``cable_load/track``'s figure-8 (``init_from``; the tracking-trained policy beside the
  hover-trained one flown zero-shot).

``report`` evaluates ``hover3`` under ``evaluate_conditions.py``'s nominal condition and
collects, with ``team.json`` (``team.py report``), ``figure8.json`` (``figure8.py``) and the
acting benchmark (``experiments/benchmarks/cable_cpu.json``), one row per claim. The claims
are about decentralised agents that never talk, so each row shows the MAPPO policies of
the robustness table (trained nominally, for 40M or 50M env-steps; failure- and
push-aware; nominally then failure- and push-aware, or push-aware alone); ``team.md`` has
the communication methods. Our criteria (the reference gives no numbers): a success claim is reproduced when greedy success over all
seeds' episodes is at least 80% (the issue's target); tracking, when every episode
completes and the position RMSE is at most 0.1 m (the success radius), with the goal shown
as the reference or up to ``figure8.py --leads`` s ahead of it (the reference does not say how
its policy was given the moving goal; the lead is ours, and picking the best of a few leads on
the evaluation itself is a fit of one number); near-constant
compute, when a decentralised agent's FLOPs change by less than 5% from the smallest to the
largest team.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from evaluate_conditions import (
    HETEROGENEOUS,
    LOST_DEAD_WEIGHT,
    LOST_DEAD_WEIGHT_HIGH,
    LOST_RELEASED,
    NOMINAL,
    PUSH,
    evaluate,
)
from team import MLP, cli

HERE = Path(__file__).resolve().parent
RUNS = HERE / "claims"
TRAIN = {
    "hover3": ["experiment=cable_hover", *MLP],
    "track": [
        "experiment=cable_hover",
        "env.name=cable_load/track",
        "+env.options={num_agents:4,load_mass_range:[1.0,1.8],trajectory:figure8}",
        *MLP,
        "init_from=experiments/cable_load/team/mappo_nominal",
    ],
}
STEPS = {"track": 10_000_000}  # env-steps per seed; hover3 40M
# team.py's runs the claims are about (MAPPO, no communication); mappo_tuned_control is
# mappo_nominal trained on nominally for 10M more env-steps per seed (50M in all)
NO_COMM = ("mappo_nominal", "mappo_tuned_control", "mappo", "mappo_tuned", "mappo_tuned_push")
BENCHMARK = HERE.parent / "benchmarks" / "cable_cpu.json"
SUCCESS_TARGET, RMSE_TARGET, FLOP_SPREAD = 0.8, 0.1, 0.05
# claim -> (how we test it, team.json's condition)
SUCCESS_CLAIMS = {
    "full-pose control with 4 MAVs": ("random full-pose goals, nominal", NOMINAL),
    "survives the loss of one MAV in flight (rotors stop, cable released)": (
        "one MAV lost at 5 s",
        LOST_RELEASED,
    ),
    "survives the loss of one MAV in flight (rotors spin down, dead weight)": (
        "one MAV lost at 5 s",
        LOST_DEAD_WEIGHT,
    ),
    "the same, with goals high enough for the dead weight to hang clear of the ground": (
        "one MAV lost at 5 s, goals 1.2-1.5 m high",
        LOST_DEAD_WEIGHT_HIGH,
    ),
    "rejects an unknown disturbance of 15.4% of the load mass": (
        "constant horizontal push, random heading",
        PUSH,
    ),
    "works beside a heterogeneous team member": (
        "mav_0: mass x1.25, thrust x0.8, gains x0.6",
        HETEROGENEOUS,
    ),
}


def success_cell(res: dict) -> tuple[str, bool]:
    """``scripts/evaluate.py``'s results -> (greedy success and survival ± CI (episodes),
    success >= target)."""
    greedy = res["deterministic"]
    (mean, ci), (alive, alive_ci) = greedy["success"], greedy["survived"]
    shown = f"{mean:.0%} ± {ci:.0%}, survived {alive:.0%} ± {alive_ci:.0%} ({episodes_of(res)} ep.)"
    return shown, mean >= SUCCESS_TARGET


def episodes_of(res: dict) -> int:
    return res["seeds"] * res["episodes_per_seed"]


def verdict(cells: list[tuple[str, bool] | None]) -> str:
    """'yes' when any policy meets the criterion, 'not yet' while one is still training."""
    if any(c and c[1] for c in cells):
        return "**yes**"
    return "not yet (training)" if None in cells else "**no**"


def rows(episodes: int) -> list[list[str]]:
    """[claim, test, policy: figure ..., criterion, reproduced] per claim."""
    team = json.loads((HERE / "team.json").read_text()) if (HERE / "team.json").exists() else {}
    figure8 = json.loads((HERE / "figure8.json").read_text())
    out = []

    hover3 = RUNS / "hover3"
    cell = None
    if (hover3 / "summary.json").exists():
        cell = success_cell(evaluate(hover3, episodes)[NOMINAL])
    show = cell[0] if cell else "training"
    out.append(
        ["full-pose control with 3 MAVs", "random full-pose goals, nominal",
         f"`claims/hover3`: {show}", "success >= 80%", verdict([cell])]
    )  # fmt: skip

    for claim, (test, condition) in SUCCESS_CLAIMS.items():
        cells = [success_cell(team[m][condition]) if m in team else None for m in NO_COMM]
        shown = [f"`{m}`: {c[0] if c else 'training'}" for m, c in zip(NO_COMM, cells, strict=True)]
        out.append([claim, test, "<br>".join(shown), "success >= 80%", verdict(cells)])

    zero_shot, shown = [], []  # figure8.py's rows: the hover-trained runs flown zero-shot
    for name, figure in figure8.items():
        res, n = figure["deterministic"], episodes_of(figure)
        (rmse, ci), (length, _) = res["tracking_rmse_position"], res["length"]
        rot, rot_ci = res["tracking_rmse_orientation_deg"]
        complete = length == 2000
        if name.split(",")[0] != "track":  # not trained on the figure-8
            zero_shot.append((name, complete and rmse <= RMSE_TARGET))
        shown.append(
            f"`{name}`: {rmse:.3f} ± {ci:.3f} m, {rot:.1f} ± {rot_ci:.1f} deg "
            f"({n} ep., {'all' if complete else 'not all'} complete)"
        )
    passed = [name for name, ok in zero_shot if ok]
    out.append(
        ["tracks a figure-8 it never trained on", "figure-8 2 m x 1 m, 20 s per loop, at 1 m",
         "<br>".join(shown), "all episodes complete, position RMSE <= 0.1 m",
         f"**yes** (`{passed[0]}`)" if passed else "**no** (zero-shot)" if zero_shot
         else "not yet"]
    )  # fmt: skip

    acting = (
        json.loads(BENCHMARK.read_text()).get("inference_rows", []) if BENCHMARK.exists() else []
    )
    flops = {r["num_agents"]: r["flops_per_agent"] for r in acting if r["policy"] == "mappo"}
    if flops:
        small, large = flops[min(flops)], flops[max(flops)]
        spread = abs(large - small) / small
        figure = ", ".join(f"{n} MAVs {f / 1e6:.2f}" for n, f in sorted(flops.items()))
        out.append(
            ["near-constant compute per agent", "greedy action of one MAV, reference network",
             f"MFLOP per agent: {figure} ({spread:.1%} apart)",
             "< 5% apart from the smallest to the largest team",
             "**yes**" if spread < FLOP_SPREAD else "**no**"]
        )  # fmt: skip
    out.append(
        ["tracking close to a centralised NMPC", "none possible here",
         "not compared: the reference flies the NMPC of its own lab on the real team; neither "
         "its code (`MARL_mav_ext` has only the INDI and geometric controllers) nor another "
         "implementation is public", "-", "**blocked**"]
    )  # fmt: skip
    return out


def report(episodes: int) -> None:
    table = rows(episodes)
    lines = [
        "# The reference's claims, reproduced or not",
        "",
        "Made by `python experiments/cable_load/claims.py report` (criteria and sources: its "
        "docstring). Figures are greedy episodes, mean ± 95% CI over all seeds' episodes.",
        "",
        "| claim | our test | policy: our figure | criterion | reproduced |",
        "| --- | --- | --- | --- | --- |",
        *("| " + " | ".join(row) + " |" for row in table),
    ]
    (HERE / "claims.md").write_text("\n".join(lines) + "\n")
    (HERE / "claims.json").write_text(json.dumps(table, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(cli(__doc__, TRAIN, RUNS, report, STEPS))
