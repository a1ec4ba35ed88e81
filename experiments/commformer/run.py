"""CommFormer against full communication, no communication and MAPPO, on grid
Predator-Prey (PP), Predator-Capture-Prey (PCP), cooperative navigation (spread N = 3, 5, 8),
cooperative communication (reference) and SMAX (3m, 5m_vs_6m; the ``bench`` extra).

    python experiments/commformer/run.py train --tasks pp pcp [--methods ...] [--seeds 5]
        [--steps 500000] [--suffix -1M]
    python experiments/commformer/run.py report

``train`` runs each method as one training run of ``--seeds`` vmapped seeds through the real
trainer, into ``runs/<task>/<method>/`` (finished runs are reused). Grid tasks use
``experiment=commformer_pp`` (the reference's settings: 20 envs x 200 steps, 10 epochs, one
minibatch, clip 0.05, bi-level); spread uses ``algo=mat`` with 32 envs x 100 steps and clip
0.2; SMAX uses the reference's SMAC settings (32 envs x 100 steps, 5 epochs, clip 0.05).
``report`` evaluates each run once (50 greedy episodes per seed, at most 20 steps on the
grid) and writes ``results.md`` / ``results.json`` (the metric on the grid: steps to capture,
lower is better; on SMAX: the win rate; on MPE: the greedy return), the learning curves and
the learned adjacency of every seed (``adjacency_<task>.png``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import yaml

from marl.checkpoint import Checkpointer
from marl.comm.graph import Graph, GraphConfig, SelfLoop
from marl.compare import (
    commands,
    compare,
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
EPISODES = 50  # greedy evaluation episodes per seed
CF = ["policy=commformer", "comm=graph"]
METHODS = {
    "CommFormer": CF,
    "Full": [*CF, "comm.mode=dense"],
    "None": ["policy=commformer", "comm=none"],
    "MAPPO": ["policy=mappo", "comm=none"],
    "CommFormer+gate": [*CF, "comm.gate=true"],
}
GRID = ["experiment=commformer_pp"]
SPREAD = ["algo=mat", "env=spread", "env.num_envs=32", "algo.num_steps=100", "algo.clip_eps=0.2"]
SMAX = ["algo=mat", "env=smax", "algo.num_steps=100", "algo.update_epochs=5"]
TASKS = {
    "pp": [*GRID],
    "pcp": [*GRID, "env.name=predator_prey/pcp"],
    "spread3": [*SPREAD, "env.options.num_agents=3"],
    "spread5": [*SPREAD, "env.options.num_agents=5"],
    "spread8": [*SPREAD, "env.options.num_agents=8"],
    "reference": [
        "algo=mat",
        "env=reference",
        "env.num_envs=32",
        "algo.num_steps=100",
        "algo.clip_eps=0.2",
    ],
    # The reference's SMAC settings: 32 envs x 100 steps, 5 epochs, clip 0.05.
    "smax3m": [*SMAX, "env.name=smax/3m"],
    "smax5m_vs_6m": [*SMAX, "env.name=smax/5m_vs_6m"],
}
COMPARE = [
    ("CommFormer", "None"),
    ("CommFormer", "MAPPO"),
    ("Full", "CommFormer"),
    ("CommFormer+gate", "CommFormer"),
]


def overrides(method: str, task: str, seeds: int, steps: int) -> list[str]:
    return [
        *TASKS[task],
        *METHODS[method],
        f"algo.total_timesteps={steps}",
        f"num_seeds={seeds}",
        "logger.wandb.mode=disabled",
        "logger.progress=false",
        "eval.gif_episodes=0",
        "keep_checkpoints=1",
    ]


def grid(task: str) -> bool:
    return task in ("pp", "pcp")


def metric_of(task: str) -> tuple[str, str, float]:
    """-> the evaluation metric of ``task``, its label, and the sign that makes higher better."""
    if grid(task):
        return "length", "steps to capture (negated: higher is better)", -1.0
    if task.startswith("smax"):
        return "won", "win rate", 1.0
    return "return", "greedy return per agent", 1.0


def report() -> None:
    results, lines = {}, []
    for setting in sorted(p for p in RUNS.glob("*") if p.is_dir()):
        task = setting.name
        runs = {m: method_runs(setting / m) for m in METHODS}
        runs = {m: r for m, r in runs.items() if r}
        if not runs:
            continue
        key, label, sign = metric_of(task)
        result = compare({m: sign * per_seed(r, EPISODES, key) for m, r in runs.items()}, COMPARE)
        train = {m: mean_ci(final_scores(r)) for m, r in runs.items()}
        for m, r in runs.items():
            result["methods"][m].update(training_return=train[m], commands=commands(r))
        results[task] = result
        summary = json.loads((runs[next(iter(runs))][0] / "summary.json").read_text())
        column = {m: f"{t[0]:.2f} ± {t[1]:.2f}" for m, t in train.items()}
        lines += [
            f"### {task}: {summary['env_steps']:,} env-steps per seed",
            "",
            f"Metric: {label}, {EPISODES} greedy episodes per seed.",
            "",
            *markdown(result, {"training return (last 10%)": column}),
            "",
        ]
        plot_methods(runs, HERE / f"curves_{task}.png", task, ylabel="training return per agent")
        # From the final checkpoint (git-ignored: a fresh clone keeps the committed figure).
        if "CommFormer" in runs and (runs["CommFormer"][0] / "checkpoints").is_dir():
            plot_adjacency(runs["CommFormer"][0], HERE / f"adjacency_{task}.png", task)
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


def plot_adjacency(run: Path, out: Path, title: str) -> None:
    """Each seed's final learned graph (``Graph.diagnostics``' adjacency), top-k outlined."""
    params = Checkpointer(run / "checkpoints", 1).load()["params"]["params"]
    edges = np.asarray(params["graph"]["edges"])  # [S, N, N]
    comm = yaml.safe_load((run / "config.yaml").read_text())["comm"]
    n = edges.shape[-1]
    graph = Graph(GraphConfig(sparsity=comm["sparsity"], self_loop=SelfLoop(comm["self_loop"])), n)
    k = graph.k
    fig, axes = plt.subplots(1, len(edges), figsize=(2.2 * len(edges), 2.4), dpi=120)
    for s, (ax, e) in enumerate(zip(np.atleast_1d(axes), edges, strict=True)):
        ax.imshow(graph.diagnostics(e)["graph/adjacency"], cmap="viridis", vmin=0, vmax=1)
        for i, j in zip(*np.nonzero(np.asarray(graph.topk(e))), strict=True):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
        ax.set(title=f"seed {s}", xlabel="sender", ylabel="receiver" if s == 0 else None)
        ax.set_xticks(range(n)), ax.set_yticks(range(n))
    fig.suptitle(f"{title}: learned adjacency (red: the top-{k} senders)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["train", "report"])
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), default=["pp", "pcp"])
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS)[:4])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=500_000, help="env-steps per seed")
    p.add_argument("--suffix", default="", help="runs into runs/<task><suffix>/ (another budget)")
    a = p.parse_args()
    if a.what == "report":
        return report()
    for task in a.tasks:
        for m in a.methods:
            train_run(RUNS / f"{task}{a.suffix}" / m, overrides(m, task, a.seeds, a.steps))


if __name__ == "__main__":
    sys.exit(main())
