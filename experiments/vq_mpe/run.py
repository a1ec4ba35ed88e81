"""The VQ symbol channel on the MPE communication tasks (``mpe/speaker_listener``,
``mpe/reference`` with PettingZoo's reward and, as ``reference_team``, with the original
MPE's team reward) with MAPPO and IPPO, against no communication.

    python experiments/vq_mpe/run.py train [--tasks ...] [--algos ...] [--methods ...]
        [--seeds 5] [--steps 10000000]
    python experiments/vq_mpe/run.py report

Every method trains with the project's PPO (``configs/algo/ppo.yaml``, JaxMARL's IPPO-FF MPE
settings) changed in three ways (``SETTINGS``), the same for all methods: 64 envs, lr 2e-3
(annealed), and two hidden layers after the channel (``policy.head_hidden=[64,64]``), where
what an agent hears meets what it sees. With JaxMARL's settings (16 envs, lr 2.5e-4, a
linear head) nothing learned to communicate in 1M-4M env-steps, not even a centralised actor
that sees the goal (see the README). On ``reference_team`` the actor has no layers before the
channel (``policy.actor_hidden=[]``), for both methods.

- ``none``: no communication at all: the environment's own words are muted
  (``env.options.mute=true``: spoken, never heard), ``comm=none``.
- ``vq``: the words muted, the VQ channel (``comm=vq``: 16 symbols, one per step, EMA
  codebook, unit-length codes) carries every message, in the same step.
- ``words``: the environment's own words (one step late, learned by RL), ``comm=none``.

``train`` runs each (task, algo, method) as one run of ``--seeds`` vmapped seeds into
``runs/<task>/<algo>/<method>/`` (finished runs are reused; the exact command is in
``command.txt``). ``report`` evaluates each run once (100 greedy and 100 sampled episodes per
seed) and writes ``results.md`` / ``results.json``: the greedy return per agent (mean ± 95% CI
over seeds, rliable's IQM and P(vq > none)), and the mutual information between each agent's
symbols and its goal landmark (``task/target``) next to the same estimate with the goal
shuffled across steps (random symbols); and ``curves_<task>.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from marl.compare import (
    commands,
    compare,
    final_eval,
    markdown,
    method_runs,
    per_seed,
    plot_methods,
    train_run,
)

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
EPISODES = 100
TASKS = {
    "speaker_listener": ["env=speaker_listener"],
    "reference": ["env=reference"],
    # the original MPE's reward (every agent gets the team's), and the channel on the
    # observation (no actor layers before it, the [64, 64] head after it); see the README
    "reference_team": ["env=reference", "+env.options.local_ratio=0.0", "policy.actor_hidden=[]"],
}
SETTINGS = ["env.num_envs=64", "algo.lr=2e-3", "policy.head_hidden=[64,64]"]
METHODS = {
    "none": ["comm=none", "+env.options.mute=true"],
    "vq": ["comm=vq", "comm.normalise=true", "+env.options.mute=true"],
    "words": ["comm=none"],
}


def overrides(task: str, algo: str, method: str, seeds: int, steps: int) -> list[str]:
    return [
        *TASKS[task],
        f"policy={algo}",
        *SETTINGS,
        *METHODS[method],
        f"algo.total_timesteps={steps}",
        f"num_seeds={seeds}",
        "logger.wandb.mode=disabled",
        "logger.progress=false",
        "eval.gif_episodes=0",
        "keep_checkpoints=1",
    ]


def report() -> None:
    results, lines = {}, []
    for task_dir in sorted(p for p in RUNS.glob("*/*") if p.is_dir()):
        setting = f"{task_dir.parent.name}/{task_dir.name}"
        runs = {m: method_runs(task_dir / m) for m in METHODS}
        runs = {m: r for m, r in runs.items() if r}
        if not runs:
            continue
        result = compare({m: per_seed(r, EPISODES) for m, r in runs.items()}, [("vq", "none")])
        for m, r in runs.items():
            result["methods"][m]["commands"] = commands(r)
        mi = {}
        if "vq" in runs:
            stats = final_eval(runs["vq"][0], EPISODES)["deterministic"]["statistics"]
            mi = {k: np.asarray(stats[k]).tolist() for k in stats if k.startswith("symbols/mi")}
            mi["perplexity"] = np.asarray(stats["symbols/perplexity"]).tolist()
            result["vq_symbols"] = mi
        results[setting] = result
        summary = json.loads((runs[next(iter(runs))][0] / "summary.json").read_text())
        lines += [
            f"### {setting}: {summary['env_steps']:,} env-steps per seed",
            "",
            f"Greedy return per agent, {EPISODES} episodes per seed.",
            "",
            *markdown(result),
            "",
        ]
        if mi:
            real, shuffled = (
                np.asarray(mi["symbols/mi/target"]),
                np.asarray(mi["symbols/mi_shuffled/target"]),
            )  # [seeds, N]
            cells = [
                f"agent {i}: {real[:, i].mean():.3f} [{real[:, i].min():.3f}, "
                f"{real[:, i].max():.3f}] vs {shuffled[:, i].mean():.3f}"
                for i in range(real.shape[1])
            ]
            lines += [
                "MI(symbols; goal landmark) in bits, mean [min, max] over seeds, vs the goal "
                "shuffled: " + "; ".join(cells),
                "",
            ]
        plot_methods(runs, HERE / f"curves_{task_dir.parent.name}_{task_dir.name}.png", setting)
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["train", "report"])
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=list(TASKS))
    p.add_argument("--algos", nargs="+", choices=["mappo", "ippo"], default=["mappo", "ippo"])
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=10_000_000, help="env-steps per seed")
    a = p.parse_args()
    if a.what == "report":
        return report()
    for task in a.tasks:
        for algo in a.algos:
            for m in a.methods:
                train_run(RUNS / task / algo / m, overrides(task, algo, m, a.seeds, a.steps))


if __name__ == "__main__":
    sys.exit(main())
