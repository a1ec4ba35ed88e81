"""AI Mother Tongue on the contextual Prisoner's Dilemma (``games/contextual_pd``, the 8 x 8
digits): the reference's agents and settings, the two changes that let them learn within
2,000 rounds without the reference's gradient-accumulation bug, and the generic VQ channel
inside MAPPO.

    python experiments/aim/run.py train [--methods ...] [--seeds 5] [--rounds 2000]
    python experiments/aim/run.py report

``train`` runs each method as one run of ``--seeds`` vmapped seeds through the real trainer
into ``runs/<method>/`` (finished runs are reused; the exact command is in ``command.txt``).
``report`` evaluates each run once (1,000 sampled and 1,000 greedy rounds per seed:
``eval/final.json``) and writes ``results.md`` / ``results.json``, the learning curves
(``curves_cooperation.png``, ``curves_joint_reward.png``) and the rank-frequency plot of the
symbol sequences (``rank_frequency.png``). Per seed: the cooperation rate and the mean joint
reward over training rounds 1,801-2,000 (sampled moves, as the reference logs them), the
first round at which the 100-round moving cooperation rate reaches 95%, and the symbol
statistics of the final policy's sampled rounds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from marl.comm.symbols import plot_rank_frequency
from marl.compare import commands, curve, final_eval, method_runs, plot_methods, train_run
from marl.evaluate import mean_ci

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
EPISODES = 1000  # evaluation rounds per seed and mode
WINDOW = 200  # the last training rounds the cooperation rate is measured on
FAST = ["algo.lr=1e-3"]
STATE_CRITIC = ["policy.critic_hears_b=false"]
METHODS = {
    # the reference's agents and settings (Adam 1e-4, A's critic hears B's symbols)
    "AIM (reference)": [],
    "AIM, lr 1e-3": FAST,
    "AIM, state critic": STATE_CRITIC,
    "AIM, lr 1e-3 + state critic": [*FAST, *STATE_CRITIC],
    "AIM, lr 1e-3 + state critic, no reflection": [*FAST, *STATE_CRITIC, "policy.reflection=false"],
    # the generic VQ channel inside MAPPO (16 rounds per update, 4 full-batch epochs)
    "MAPPO + VQ channel": [
        "policy=mappo",
        "comm=vq",
        "comm.seq_len=2",
        "comm.codebook_size=32",
        "algo=ppo",
        "env.num_envs=16",
        "algo.num_steps=1",
        "algo.num_minibatches=1",
        "algo.lr=1e-3",
        "algo.lr_schedule.kind=constant",
    ],
}


def directory(method: str) -> Path:
    """``runs/aim_reference``, ``runs/aim_lr_1e-3_plus_state_critic``, ..."""
    name = method.lower().replace("+", "plus").replace("(", "").replace(")", "").replace(",", "")
    return RUNS / "_".join(name.split())


def overrides(method: str, seeds: int, rounds: int) -> list[str]:
    return [
        "experiment=aim_pd",
        *METHODS[method],
        f"algo.total_timesteps={rounds}",
        f"num_seeds={seeds}",
        "logger.wandb.mode=disabled",
        "logger.progress=false",
        "keep_checkpoints=1",
    ]


def rounds_to_95(steps: np.ndarray, coop: np.ndarray) -> np.ndarray:
    """[seeds]: the first round (env-step) at which the mean cooperation of the last 100
    rounds reaches 0.95; NaN if never."""
    w = max(1, round(100 / (steps[1] - steps[0])))  # updates per 100 rounds
    out = []
    for c in coop.T:
        window = np.convolve(np.nan_to_num(c), np.ones(w) / w, "valid")
        hit = np.flatnonzero(window >= 0.95)
        out.append(steps[hit[0] + w - 1] if len(hit) else np.nan)
    return np.array(out, float)


def report() -> None:
    runs = {m: method_runs(directory(m)) for m in METHODS}
    runs = {m: r for m, r in runs.items() if r}
    results, rows = {}, []
    for m, r in runs.items():
        steps, coop = curve(r, "cooperation")  # [U], [U, seeds]: per update (its rounds' mean)
        _, joint = curve(r, "joint_reward")
        last = steps > steps[-1] - WINDOW
        final = final_eval(r[0], EPISODES)
        stats = final["stochastic"]["statistics"]
        result = {
            "commands": commands(r),
            "rounds": int(steps[-1]),
            "cooperation_last": mean_ci(np.nanmean(coop[last], 0)),
            "joint_reward_last": mean_ci(np.nanmean(joint[last], 0)),
            "rounds_to_95": rounds_to_95(steps, coop).tolist(),
            "greedy_joint_reward": mean_ci(np.array(final["deterministic"]["per_seed"]["return"])),
            "symbols": {
                k: np.asarray(v).tolist() for k, v in stats.items() if k != "symbols/rank_counts"
            },
        }
        results[m] = result
        (c, cc), (j, jc) = result["cooperation_last"], result["joint_reward_last"]
        hits = np.array(result["rounds_to_95"])
        reached = f"{np.sum(~np.isnan(hits))}/{len(hits)}" + (
            f", median {np.nanmedian(hits):.0f}" if np.any(~np.isnan(hits)) else ""
        )
        s = {k: np.asarray(v) for k, v in stats.items()}  # [seeds, 2 agents]
        rows.append(
            f"| {m} | {c:.3f} ± {cc:.3f} | {j:.2f} ± {jc:.2f} | {reached} | "
            + " | ".join(
                f"{s[k][:, 0].mean():.2f} / {s[k][:, 1].mean():.2f}"
                for k in ("symbols/top_share", "symbols/distinct_sequences", "symbols/slope_lsq")
            )
            + f" | {s['symbols/mi/choice'][:, 0].mean():.2f} ({s['symbols/mi_shuffled/choice'][:, 0].mean():.2f}) |"
        )
        if m == "AIM, lr 1e-3 + state critic":
            counts = np.asarray(stats["symbols/rank_counts"])[0]  # seed 0: [2, R]
            plot_rank_frequency(
                counts,
                HERE / "rank_frequency.png",
                f"{m}: {EPISODES} sampled rounds, seed 0",
                labels=["agent A", "agent B"],
            )
    for metric in ("cooperation", "joint_reward"):
        plot_methods(
            runs,
            HERE / f"curves_{metric}.png",
            "contextual PD (moving average over 100 rounds)",
            metric,
            xlabel="round",
            smooth_steps=100,
        )
    head = (
        f"| method | cooperation, last {WINDOW} rounds | joint reward, last {WINDOW} rounds | "
        "seeds reaching 95% (round) | top sequence share A / B | distinct sequences A / B | "
        "rank-frequency slope (LS) A / B | MI(A's symbols; A's move) bits (shuffled) |"
    )
    lines = [head, "|" + " --- |" * 8, *rows]
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["train", "report"])
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rounds", type=int, default=2000)
    a = p.parse_args()
    if a.what == "report":
        return report()
    for m in a.methods:
        train_run(directory(m), overrides(m, a.seeds, a.rounds))


if __name__ == "__main__":
    sys.exit(main())
