"""Comparing methods over seeds, for the experiment scripts: training runs composed from
config overrides (a finished run is reused), their learning curves and final scores, a
one-off final evaluation, and rliable's IQM and probability of improvement (the
``analysis`` extra: ``pip install -e ".[analysis]"``).

A method's runs are one run directory with vmapped seeds, or one directory per seed
(``seed<k>/``, for host environments, which train one seed per run).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from marl.evaluate import mean_ci
from marl.plot import curve, plot_methods  # noqa: F401  (re-exported for the experiment scripts)

ROOT = Path(__file__).resolve().parents[1]


def command_line(run_dir: Path, overrides: list[str]) -> str:
    return f"python scripts/train.py {' '.join(overrides)} run_dir={run_dir.relative_to(ROOT)}"


def train_run(run_dir: Path, overrides: list[str], stop_after_chunks: int | None = None) -> Path:
    """Train ``overrides`` into ``run_dir`` unless a finished run (``summary.json``) is there
    (an interrupted one is resumed), for at most ``stop_after_chunks`` chunks in this call;
    the exact command goes to ``command.txt``."""
    from hydra import compose, initialize_config_dir

    from marl.config import CONFIG_DIR, register_configs, to_config
    from marl.train import train

    if (run_dir / "summary.json").exists():
        return run_dir
    register_configs()
    resume = [f"resume={run_dir}"] if (run_dir / "config.yaml").exists() else []
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        cfg = compose("config", overrides=[*overrides, f"run_dir={run_dir}", *resume])
    print(command_line(run_dir, overrides), flush=True)
    train(to_config(cfg), stop_after_chunks)
    (run_dir / "command.txt").write_text(command_line(run_dir, overrides) + "\n")
    return run_dir


def method_runs(method_dir: Path) -> list[Path]:
    """A method's finished runs: one with vmapped seeds, or one per seed (``seed<k>/``)."""
    if (method_dir / "summary.json").exists():
        return [method_dir]
    return sorted(p.parent for p in method_dir.glob("seed*/summary.json"))


def commands(runs: list[Path]) -> list[str]:
    return [(r / "command.txt").read_text().strip() for r in runs if (r / "command.txt").exists()]


def final_scores(runs: list[Path], metric: str = "return") -> np.ndarray:
    """[seeds]: the training ``metric`` over the last 10% of updates."""
    _, values = curve(runs, metric)
    return np.nanmean(values[-max(1, len(values) // 10) :], 0)


def final_eval(run: Path, episodes: int) -> dict:
    """Greedy and sampled episodes per seed with the final parameters, run once:
    ``eval/final.json``."""
    from marl.cli import evaluate_main

    out = run / "eval" / "final.json"
    if not out.exists():
        evaluate_main([f"run={run}", f"episodes={episodes}", "gif_episodes=0", "tag=final"])
    return json.loads(out.read_text())


def per_seed(runs: list[Path], episodes: int, metric: str = "return") -> np.ndarray:
    """[seeds]: each seed's mean greedy evaluation ``metric``."""
    return np.concatenate(
        [final_eval(r, episodes)["deterministic"]["per_seed"][metric] for r in runs]
    )


def compare(
    scores: dict[str, np.ndarray], pairs: list[tuple[str, str]], reps: int = 2000
) -> dict[str, dict]:
    """``scores``: method -> ``[seeds]`` or ``[seeds, tasks]`` (higher is better; tasks on one
    scale). -> per method the mean ± 95% CI over seeds (of the mean over tasks) and rliable's
    IQM over all runs and tasks with its stratified-bootstrap 95% CI; per pair ``(x, y)``
    rliable's probability that x improves on y (averaged over tasks), with its CI."""
    from rliable import library as rly
    from rliable import metrics

    table = {  # [seeds, tasks]
        m: np.asarray(s, np.float64).reshape(len(s), -1) for m, s in scores.items()
    }
    with _fixed_numpy_seed():
        iqm, iqm_ci = rly.get_interval_estimates(
            table, lambda x: np.array([metrics.aggregate_iqm(x)]), reps=reps
        )
    out = {
        m: {
            "seeds": table[m].tolist() if table[m].shape[1] > 1 else table[m][:, 0].tolist(),
            "mean_ci": mean_ci(table[m].mean(1)),
            "iqm": float(iqm[m][0]),
            "iqm_ci": iqm_ci[m][:, 0].tolist(),
        }
        for m in table
    }
    pairs = {f"{a} > {b}": (table[a], table[b]) for a, b in pairs if {a, b} <= set(table)}
    improvement = {}
    if pairs:
        with _fixed_numpy_seed():
            p, ci = rly.get_interval_estimates(pairs, metrics.probability_of_improvement, reps=reps)
        improvement = {k: {"p": float(p[k]), "ci": np.ravel(ci[k]).tolist()} for k in pairs}
    return {"methods": out, "probability_of_improvement": improvement}


@contextmanager
def _fixed_numpy_seed(seed: int = 0):
    """rliable's stratified bootstrap draws from NumPy's global generator (whatever its
    ``random_state`` says): seed it, so that a report is the same every time, and put it back."""
    saved = np.random.get_state()  # noqa: NPY002  (the generator rliable uses)
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(saved)  # noqa: NPY002


def markdown(result: dict, extra: dict[str, dict[str, str]] | None = None) -> list[str]:
    """``compare``'s result as markdown tables; ``extra``: column -> method -> cell."""
    extra = extra or {}
    lines = [
        "| method | seeds | mean ± 95% CI | IQM [95% CI] |" + "".join(f" {c} |" for c in extra),
        "| --- | ---: | ---: | ---: |" + " ---: |" * len(extra),
    ]
    for m, r in result["methods"].items():
        (mean, ci), (lo, hi) = r["mean_ci"], r["iqm_ci"]
        cells = "".join(f" {col.get(m, '')} |" for col in extra.values())
        lines.append(
            f"| {m} | {len(r['seeds'])} | {mean:.2f} ± {ci:.2f} | {r['iqm']:.2f} "
            f"[{lo:.2f}, {hi:.2f}] |{cells}"
        )
    if result["probability_of_improvement"]:
        lines += ["", "| P(X > Y) | estimate [95% CI] |", "| --- | ---: |"]
        for k, v in result["probability_of_improvement"].items():
            lines.append(f"| {k} | {v['p']:.2f} [{v['ci'][0]:.2f}, {v['ci'][1]:.2f}] |")
    return lines
