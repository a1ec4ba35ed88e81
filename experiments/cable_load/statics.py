"""How often can three MAVs hold the load at its goal after the fourth is lost? A bound from
statics on the lost-MAV rows of ``team.md`` and ``claims.md``.

    python experiments/cable_load/statics.py [--goals 1000] [--near 16] [--seed 0]

For goals drawn as ``cable_load/hover4`` draws them (the env's own ``start_and_goal``: roll
and pitch U[-45, 45] deg, yaw U[-180, 180] deg; load mass U[1.0, 1.8] kg; the lost MAV
uniform), a linear program asks whether the three remaining cables can hold the load still
at the goal orientation or at one of ``--near`` orientations drawn within 10 degrees of it
(the success radius): forces and torques on the load balance, each cable pulls (it cannot
push) within ``cone`` degrees of the vertical, and each MAV's thrust (its weight plus its
cable's pull) stays within its 25 N limit. The lost MAV's cable carries nothing
(released) or its MAV's weight straight down (dead weight, hanging still, which also needs
the goal high enough for the MAV to hang clear of the ground). A greedy episode
can end in success only at such an equilibrium, so the fractions bound success from above,
up to the sampling of near orientations (the drones' own limits, distances and cable
angles only lower it). Writes ``statics.md`` / ``statics.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import jax
import numpy as np
from scipy.optimize import linprog

import envs
from envs.cable_load import rigid
from envs.cable_load.hover import GROUND
from marl.evaluate import mean_ci

HERE = Path(__file__).resolve().parent
SUCCESS_DEG = 10.0
CONES = (45.0, 60.0, 75.0, 89.0)  # deg: how far from the vertical a cable may pull


# 26 unit directions (a cube's faces, edges and corners): d . x <= r for each of them is a
# polytope around the ball |x| <= r, so thrust limits imposed this way keep the bound a bound
CUBE = np.array([d for d in itertools.product((-1, 0, 1), repeat=3) if any(d)], float)
DIRECTIONS = CUBE / np.linalg.norm(CUBE, axis=1, keepdims=True)


def holds(
    anchors: np.ndarray, weight: float, dead: np.ndarray | None, cone: float, mav: np.ndarray
) -> bool:
    """Can the three cables at ``anchors [3, 3]`` (world frame, from the load's centre of
    mass) balance the load's ``weight`` (N) and a ``dead`` ``[anchor (3), weight]`` load,
    each pulling within ``cone`` degrees of the vertical and held by a MAV of weight
    ``mav [3, 2]`` (N, and its thrust limit) that must carry it?"""
    # unknowns: the three cable forces on the load [9]; rows: force [3], torque [3]
    skew = lambda r: np.array([[0, -r[2], r[1]], [r[2], 0, -r[0]], [-r[1], r[0], 0]])  # noqa: E731
    a_eq = np.block([[np.eye(3)] * 3, [skew(r) for r in anchors]])
    down = np.array([0.0, 0.0, -weight])
    torque = np.zeros(3)
    if dead is not None:
        down[2] -= dead[3]
        torque = np.cross(dead[:3], [0.0, 0.0, -dead[3]])
    b_eq = -np.concatenate([down, torque])
    a_ub, b_ub = [], []
    for k, (own, limit) in enumerate(mav):
        # |f_x|, |f_y| <= tan(cone) f_z: a pull, not a push (a square cone)
        for axis in (0, 1):
            for sign in (1.0, -1.0):
                row = np.zeros(9)
                row[3 * k + axis], row[3 * k + 2] = sign, -np.tan(np.radians(cone))
                a_ub.append(row)
                b_ub.append(0.0)
        # its MAV's thrust, f + its weight, within the limit
        for d in DIRECTIONS:
            row = np.zeros(9)
            row[3 * k : 3 * k + 3] = d
            a_ub.append(row)
            b_ub.append(limit - own * d[2])
    res = linprog(np.zeros(9), A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=b_eq,
                  bounds=[(None, None)] * 9)  # fmt: skip
    return res.status == 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--goals", type=int, default=1000)
    p.add_argument("--near", type=int, default=16, help="orientations tried within 10 deg")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    env = envs.make("cable_load/hover4")
    keys = jax.random.split(jax.random.PRNGKey(a.seed), (a.goals, 5))
    _, _, goal_pos, goal_quat = map(np.asarray, jax.vmap(env.start_and_goal)(keys))
    rng = np.random.default_rng(a.seed)
    lo, hi = env.load_mass_range
    drawn = jax.vmap(env.mass_properties)(rng.uniform(lo, hi, a.goals).astype(np.float32))
    load_mass = 1.0 / np.asarray(drawn.inv_mass[:, 0])  # with its half of each rod
    lost = rng.integers(env.num_agents, size=a.goals)
    # orientations within the success radius: the goal, then --near random rotations of it
    axis = rng.normal(size=(a.goals, a.near, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.radians(SUCCESS_DEG) * rng.uniform(size=(a.goals, a.near))
    near = rigid.quat_mul(goal_quat[:, None], rigid.quat_from_axis_angle(axis, angle))
    quats = np.concatenate([goal_quat[:, None], np.asarray(near)], 1)  # [G, 1 + near, 4]
    frames = np.asarray(rigid.quat_to_matrix(quats))  # [G, 1 + near, 3, 3]
    anchors = np.einsum("gkij,nj->gkni", frames, env.cables.load_anchor)  # [G, K, N, 3]
    # a dead weight's MAV, upside down under its anchor, clears the ground (or not) there
    below = env.cables.length[0] + np.linalg.norm(env.cables.drone_anchor)
    clear = goal_pos[:, 2, None, None] + anchors[..., 2] - below > GROUND  # [G, K, N]
    weight = env.drone_mass * rigid.GRAVITY  # [N]
    mavs = np.stack([weight, env.quad.max_thrust], -1)  # [N, 2]

    results = {}
    for model in ("released", "dead weight"):
        dead = model == "dead weight"
        for cone in CONES:
            held = []
            for g, i in enumerate(lost):
                live = np.arange(env.num_agents) != i
                held.append(
                    any(
                        (not dead or clear[g, k, i])
                        and holds(
                            at[live],
                            load_mass[g] * rigid.GRAVITY,
                            np.append(at[i], weight[i]) if dead else None,
                            cone,
                            mavs[live],
                        )
                        for k, at in enumerate(anchors[g])
                    )
                )
            results[f"{model}, cables within {cone:.0f} deg"] = mean_ci(np.array(held, float))
            print(model, cone, results[f"{model}, cables within {cone:.0f} deg"], flush=True)

    command = "python experiments/cable_load/statics.py " + " ".join(
        f"--{k} {v}" for k, v in vars(a).items()
    )
    lines = [
        "# A MAV lost: goals at which the three others can hold the load still",
        "",
        f"`{command}`: {a.goals} goals of `cable_load/hover4`, each with {a.near} orientations",
        f"within {SUCCESS_DEG:.0f} deg; fraction with a static equilibrium (mean ± 95% CI), an",
        "upper bound on greedy success under the lost MAV.",
        "",
        "| failure model, cable angle from the vertical | goals holdable |",
        "| --- | ---: |",
        *(f"| {k} | {m:.0%} ± {ci:.0%} |" for k, (m, ci) in results.items()),
    ]
    (HERE / "statics.json").write_text(json.dumps({"command": command, **results}, indent=2))
    (HERE / "statics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
