"""HAMMER on cooperative navigation (``mpe/spread``, local_ratio 0.5, 25 steps) and on
PettingZoo's multiwalker: the messenger variants against independent learners, IL with
random messages and MAPPO.

    python experiments/hammer/run.py train --n 3 --algo ppo [--methods IL v2 ...] [--seeds 5]
        [--episodes 30000] [--fixed-start]
    python experiments/hammer/run.py train --multiwalker [--steps 200000] [--methods ...]
    python experiments/hammer/run.py report

``train`` runs each method through the real trainer into
``runs/<algo>[-fixed]/<n<N>|multiwalker>/<method>/``; on spread as one run of ``--seeds``
seeds (vmapped), on multiwalker (a host environment: one seed per run) as one run per seed in
``seed<k>/``. Finished runs (a ``summary.json``) are reused. ``--algo ppo`` is the project's
PPO (``configs/algo/ppo.yaml``: GAE, 128 steps per env, 4 epochs x 4 minibatches); ``--algo
hammer_reference`` the reference's (Monte-Carlo returns normalised per agent, 32 episodes per
update, 8 full-batch epochs, gamma 0.95). Resets are random layouts every episode unless
``--fixed-start`` (the reference's ``reset(seed)``: one layout per seed). Multiwalker
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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from rliable import library as rly  # noqa: E402
from rliable import metrics  # noqa: E402

from marl.cli import evaluate_main  # noqa: E402
from marl.config import CONFIG_DIR, register_configs, to_config  # noqa: E402
from marl.evaluate import mean_ci  # noqa: E402
from marl.plot import load_curve  # noqa: E402
from marl.train import train  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
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


def overrides(method: str, n: int, algo: str, seeds: int, episodes: int, fixed: bool) -> list[str]:
    return [
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


def train_one(run_dir: Path, args: list[str]) -> None:
    if (run_dir / "summary.json").exists():
        return
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=[*args, f"run_dir={run_dir}"])
    print(command_line(run_dir, args), flush=True)
    train(to_config(cfg))
    (run_dir / "command.txt").write_text(command_line(run_dir, args) + "\n")


def command_line(run_dir: Path, args: list[str]) -> str:
    return f"python scripts/train.py {' '.join(args)} run_dir={run_dir.relative_to(ROOT)}"


def setting_dir(algo: str, task: str, fixed: bool) -> Path:
    return RUNS / f"{algo}{'-fixed' if fixed else ''}" / task


def method_runs(method_dir: Path) -> list[Path]:
    """A method's finished runs: one with vmapped seeds, or one per seed (``seed<k>/``)."""
    if (method_dir / "summary.json").exists():
        return [method_dir]
    return sorted(p.parent for p in method_dir.glob("seed*/summary.json"))


def curve(runs: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(env_steps [U], training return [U, seeds]) over a method's runs."""
    curves = [load_curve(r) for r in runs]
    u = min(len(steps) for steps, _ in curves)
    return curves[0][0][:u], np.concatenate([values[:u] for _, values in curves], 1)


def final_scores(runs: list[Path]) -> np.ndarray:
    """[seeds]: the training return per agent and episode over the last 10% of updates."""
    _, values = curve(runs)
    return np.nanmean(values[-max(1, len(values) // 10) :], 0)


def report() -> None:
    results, lines = {}, []
    for setting in sorted(p for p in RUNS.glob("*/*") if p.is_dir()):
        runs = {m: method_runs(setting / m) for m in METHODS}
        runs = {m: r for m, r in runs.items() if r}
        if not runs:
            continue
        name, task = f"{setting.parent.name}/{setting.name}", setting.name
        episodes = EVAL_EPISODES[MULTIWALKER if task == MULTIWALKER else "spread"]
        scores = {m: final_scores(r)[:, None] for m, r in runs.items()}  # [seeds, 1 task]
        iqm, iqm_ci = rly.get_interval_estimates(
            scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=2000
        )
        pairs = {f"{a} > {b}": (scores[a], scores[b]) for a, b in COMPARE if {a, b} <= set(runs)}
        p_imp, p_ci = ({}, {})
        if pairs:
            p_imp, p_ci = rly.get_interval_estimates(
                pairs, metrics.probability_of_improvement, reps=2000
            )
        results[name] = {
            m: {
                "seeds": scores[m][:, 0].tolist(),
                "mean_ci": mean_ci(scores[m][:, 0]),
                "eval_greedy": mean_ci(greedy_returns(runs[m], episodes)),
                "iqm": float(iqm[m][0]),
                "iqm_ci": iqm_ci[m][:, 0].tolist(),
                "commands": [command(r) for r in runs[m]],
            }
            for m in runs
        }
        results[name]["probability_of_improvement"] = {
            k: {"p": float(p_imp[k]), "ci": np.ravel(p_ci[k]).tolist()} for k in pairs
        }
        config = run_config(runs[next(iter(runs))][0])
        env_steps = config["algo"]["total_timesteps"]
        budget = (
            f"{env_steps:,} env-steps per seed"
            if task == MULTIWALKER
            else f"N = {task[1:]}, {env_steps // STEPS:,} episodes per seed"
        )
        layouts = "fixed layout per seed" if "fixed" in setting.parent.name else "random layouts"
        lines += [
            f"### {name}: {budget}, algo={setting.parent.name.split('-')[0]}, {layouts}",
            "",
            "| method | seeds | training return (mean ± 95% CI) | IQM [95% CI] | greedy "
            f"evaluation ({episodes} episodes per seed) |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for m in runs:
            r = results[name][m]
            lo, hi = r["iqm_ci"]
            lines.append(
                f"| {m} | {len(r['seeds'])} | {r['mean_ci'][0]:.2f} ± {r['mean_ci'][1]:.2f} | "
                f"{r['iqm']:.2f} [{lo:.2f}, {hi:.2f}] | {r['eval_greedy'][0]:.2f} ± "
                f"{r['eval_greedy'][1]:.2f} |"
            )
        if pairs:
            lines += ["", "| P(X > Y) | estimate [95% CI] |", "| --- | ---: |"]
            for k, v in results[name]["probability_of_improvement"].items():
                lines.append(f"| {k} | {v['p']:.2f} [{v['ci'][0]:.2f}, {v['ci'][1]:.2f}] |")
        lines.append("")
        tag = name.replace("/", "_")
        plot_curves(runs, HERE / f"curves_{tag}.png", name, per_episode=task != MULTIWALKER)
        plot_messages(runs, episodes, HERE / f"messages_{tag}.png", name)
    (HERE / "results.json").write_text(json.dumps(results, indent=2))
    (HERE / "results.md").write_text("\n".join(lines))
    print("\n".join(lines))


def run_config(run: Path) -> dict:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())


def command(run: Path) -> str:
    return (run / "command.txt").read_text().strip() if (run / "command.txt").exists() else ""


def plot_curves(runs: dict[str, list[Path]], out: Path, title: str, per_episode: bool) -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for m, r in runs.items():
        steps, values = curve(r)
        x = steps / STEPS if per_episode else steps
        mean, n = np.nanmean(values, 1), np.sum(~np.isnan(values), 1)
        ci = 1.96 * np.nanstd(values, 1, ddof=1) / np.sqrt(n)
        ax.plot(x, mean, label=f"{m} ({values.shape[1]} seeds)")
        ax.fill_between(x, mean - ci, mean + ci, alpha=0.2)
    xlabel = "episodes (per seed)" if per_episode else "env-steps (per seed)"
    ax.set(xlabel=xlabel, ylabel="return per agent", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def final_eval(run: Path, episodes: int) -> dict:
    """Greedy and sampled episodes per seed with the final parameters (random layouts), run
    once: ``eval/final.json``."""
    out = run / "eval" / "final.json"
    if not out.exists():
        evaluate_main([f"run={run}", f"episodes={episodes}", "gif_episodes=0", "tag=final"])
    return json.loads(out.read_text())


def greedy_returns(runs: list[Path], episodes: int) -> np.ndarray:
    """[seeds]: each seed's mean greedy evaluation return."""
    per_run = [final_eval(r, episodes)["deterministic"]["per_seed_return"] for r in runs]
    return np.concatenate(per_run)


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
    p.add_argument("--multiwalker", action="store_true", help="PettingZoo's multiwalker")
    p.add_argument("--steps", type=int, default=200_000, help="env-steps per seed, multiwalker")
    a = p.parse_args()
    if a.what == "report":
        return report()
    if a.multiwalker:
        for m in a.methods:
            for seed in range(a.seeds):
                run_dir = setting_dir(a.algo, MULTIWALKER, False) / m / f"seed{seed}"
                train_one(run_dir, multiwalker_overrides(m, a.algo, seed, a.steps))
        return
    for n in a.n:
        for m in a.methods:
            run_dir = setting_dir(a.algo, f"n{n}", a.fixed_start) / m
            args = overrides(m, n, a.algo, a.seeds, a.episodes, a.fixed_start)
            train_one(run_dir, args)


if __name__ == "__main__":
    sys.exit(main())
