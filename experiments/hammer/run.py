"""HAMMER on cooperative navigation (``mpe/spread``, local_ratio 0.5, 25 steps) and on
PettingZoo's multiwalker: the messenger variants against independent learners, IL with
random messages and MAPPO.

    python experiments/hammer/run.py train --n 3 --algo ppo [--methods IL v2 ...] [--seeds 5]
        [--episodes 30000] [--fixed-start] [--ablation partial|hetero]
    python experiments/hammer/run.py train --multiwalker [--steps 200000] [--methods ...]
    python experiments/hammer/run.py report

``train`` runs each method through the real trainer into
``runs/<algo>[-fixed][-<ablation>]/<n<N>|multiwalker>/<method>/``; on spread as one run of ``--seeds``
seeds (vmapped), on multiwalker (a host environment: one seed per run) as one run per seed in
``seed<k>/``. Finished runs (a ``summary.json``) are reused. ``--algo ppo`` is the project's
PPO (``configs/algo/ppo.yaml``: GAE, 128 steps per env, 4 epochs x 4 minibatches); ``--algo
hammer_reference`` the reference's (Monte-Carlo returns normalised per agent, 32 episodes per
update, 8 full-batch epochs, gamma 0.95). Resets are random layouts every episode unless
``--fixed-start`` (the reference's ``reset(seed)``: one layout per seed). The paper's
ablations: ``--ablation partial`` (every agent keeps its first 10 observation values) and
``--ablation hetero`` (agent 0 alone keeps its first 10). Multiwalker
(``configs/env/multiwalker_hammer.yaml``, the paper's settings) gives the messenger the
previous actions too (``comm.sees_actions=true``), as the reference does.

``report`` evaluates each finished run once (greedy and sampled episodes per seed, 100 on
spread, 10 on multiwalker: ``eval/final.json``) and writes ``results.md`` / ``results.json``
(per setting: the training return per agent and episode over the last 10% of updates, mean ±
95% CI over seeds and rliable's IQM with stratified-bootstrap 95% CIs; the greedy evaluation
return, mean ± 95% CI over seeds; rliable's probability that v2 / v3 improve on IL and on IL
with random messages), the learning curves (``curves_<setting>.png``, on the paper's episode
axis for spread, env-steps for multiwalker) and the message diagnostics of the final
evaluation (``messages_<setting>.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from marl.compare import (
    commands,
    compare,
    final_eval,
    final_scores,
    markdown,
    method_runs,
    per_seed,
    plot_methods,
    train_run,
)
from marl.evaluate import mean_ci

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"
STEPS = 25  # per episode
HAMMER = ["policy=hammer", "comm=messenger"]
METHODS = {
    "IL": ["policy=hammer", "comm=none"],
    "IL+random": [*HAMMER, "comm.mode=random"],
    "v1": [*HAMMER, "comm.mode=rl"],
    "v2": [*HAMMER, "comm.mode=learned"],
    "v3": [*HAMMER, "comm.mode=dru"],
    "MAPPO": ["policy=mappo"],
}
ENV = {"ppo": ["env.num_envs=16"], "hammer_reference": ["env.num_envs=32"]}
MULTIWALKER = "multiwalker"
EVAL_EPISODES = {"spread": 100, MULTIWALKER: 10}  # per seed, in the report's final evaluation
COMPARE = [("v2", "IL"), ("v3", "IL"), ("v2", "IL+random"), ("v3", "IL+random")]


ABLATIONS = {
    None: [],
    "partial": ["env.observe_first=10"],
    "hetero": ["env.observe_first=10", "env.observe_first_agents=[0]"],
}


def overrides(
    method: str, n: int, algo: str, seeds: int, episodes: int, fixed: bool, ablation=None
) -> list[str]:
    return [
        *ABLATIONS[ablation],
        *METHODS[method],
        f"algo={algo}",
        *ENV[algo],
        f"env.options.num_agents={n}",
        f"algo.total_timesteps={episodes * STEPS}",
        f"num_seeds={seeds}",
        f"env.fixed_start={str(fixed).lower()}",
        "logger.wandb.mode=disabled",
        "logger.progress=false",
        "eval.gif_episodes=0",
        "keep_checkpoints=1",
    ]


def multiwalker_overrides(method: str, algo: str, seed: int, steps: int) -> list[str]:
    """One seed on PettingZoo's multiwalker; the messenger also sees the previous actions."""
    sees = ["comm.sees_actions=true"] if method in ("v1", "v2", "v3") else []
    return [
        *METHODS[method],
        *sees,
        "env=multiwalker_hammer",
        f"algo={algo}",
        f"algo.total_timesteps={steps}",
        f"seed={seed}",
        "logger.wandb.mode=disabled",
        "logger.progress=false",
        "eval.gif_episodes=0",
        "eval.episodes=4",
        "eval.every_chunks=0",
        "keep_checkpoints=1",
    ]


def setting_dir(algo: str, task: str, fixed: bool, ablation: str | None = None) -> Path:
    return RUNS / f"{algo}{'-fixed' if fixed else ''}{f'-{ablation}' if ablation else ''}" / task


def report() -> None:
    results, lines = {}, []
    for setting in sorted(p for p in RUNS.glob("*/*") if p.is_dir()):
        runs = {m: method_runs(setting / m) for m in METHODS}
        runs = {m: r for m, r in runs.items() if r}
        if not runs:
            continue
        name, task = f"{setting.parent.name}/{setting.name}", setting.name
        episodes = EVAL_EPISODES[MULTIWALKER if task == MULTIWALKER else "spread"]
        result = compare({m: final_scores(r) for m, r in runs.items()}, COMPARE)
        greedy = {m: mean_ci(per_seed(r, episodes)) for m, r in runs.items()}
        for m, r in runs.items():
            result["methods"][m].update(eval_greedy=greedy[m], commands=commands(r))
        results[name] = result
        config = run_config(runs[next(iter(runs))][0])
        env_steps = config["algo"]["total_timesteps"]
        budget = (
            f"{env_steps:,} env-steps per seed"
            if task == MULTIWALKER
            else f"N = {task[1:]}, {env_steps // STEPS:,} episodes per seed"
        )
        layouts = "fixed layout per seed" if "fixed" in setting.parent.name else "random layouts"
        layouts += {
            "partial": ", each agent sees its first 10 observation values",
            "hetero": ", agent 0 sees its first 10 observation values",
        }.get(setting.parent.name.split("-")[-1], "")
        column = {m: f"{g[0]:.2f} ± {g[1]:.2f}" for m, g in greedy.items()}
        lines += [
            f"### {name}: {budget}, algo={setting.parent.name.split('-')[0]}, {layouts}",
            "",
            "Training return per agent and episode (last 10% of updates):",
            "",
            *markdown(result, {f"greedy evaluation ({episodes} episodes per seed)": column}),
            "",
        ]
        tag = name.replace("/", "_")
        spread = task != MULTIWALKER
        plot_methods(
            runs,
            HERE / f"curves_{tag}.png",
            name,
            x_per=STEPS if spread else 1.0,
            xlabel="episodes (per seed)" if spread else "env-steps (per seed)",
            ylabel="return per agent",
        )
        plot_messages(runs, episodes, HERE / f"messages_{tag}.png", name)
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


def run_config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def plot_messages(runs: dict[str, list[Path]], episodes: int, out: Path, title: str) -> None:
    """Per agent: message mean, variance and the linear probe's R² in the final greedy
    evaluation (per seed, averaged), for the methods that send messages."""
    stats = {}
    for m, r in runs.items():
        per_run = [final_eval(run, episodes)["deterministic"].get("statistics", {}) for run in r]
        if all("message/mean" in s for s in per_run):
            stats[m] = {
                k: np.nanmean([np.array(s[k], float) for s in per_run], 0) for k in per_run[0]
            }
    if not stats:
        return
    keys = ["message/mean", "message/var", "message/probe_r2"]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), dpi=120)
    width = 0.8 / len(stats)
    for i, (m, s) in enumerate(stats.items()):
        for ax, k in zip(axes, keys, strict=True):
            v = s[k].reshape(len(s[k]), -1).mean(-1)  # [N]
            ax.bar(np.arange(len(v)) + i * width, v, width, label=m)
    n = len(next(iter(stats.values()))[keys[0]])
    for ax, k in zip(axes, keys, strict=True):
        ax.set(title=k, xlabel="agent")
        ax.set_xticks(np.arange(n) + 0.4 - width / 2, [str(i) for i in range(n)])
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{title}: messages in the final greedy evaluation", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["train", "report"])
    p.add_argument("--n", type=int, nargs="+", default=[3])
    p.add_argument("--algo", choices=list(ENV), default="ppo")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--episodes", type=int, default=30_000, help="per seed, on spread")
    p.add_argument("--fixed-start", action="store_true")
    p.add_argument("--ablation", choices=["partial", "hetero"])
    p.add_argument("--multiwalker", action="store_true", help="PettingZoo's multiwalker")
    p.add_argument("--steps", type=int, default=200_000, help="env-steps per seed, multiwalker")
    a = p.parse_args()
    if a.what == "report":
        return report()
    if a.multiwalker:
        for m in a.methods:
            for seed in range(a.seeds):
                run_dir = setting_dir(a.algo, MULTIWALKER, False) / m / f"seed{seed}"
                train_run(run_dir, multiwalker_overrides(m, a.algo, seed, a.steps))
        return
    for n in a.n:
        for m in a.methods:
            run_dir = setting_dir(a.algo, f"n{n}", a.fixed_start, a.ablation) / m
            args = overrides(m, n, a.algo, a.seeds, a.episodes, a.fixed_start, a.ablation)
            train_run(run_dir, args)


if __name__ == "__main__":
    sys.exit(main())
