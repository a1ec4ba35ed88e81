"""Learning curves from run directories: mean ± 95% CI over seeds, several runs per figure."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load_curve(run_dir: str | Path, metric: str = "return") -> tuple[np.ndarray, np.ndarray]:
    """(env_steps [U], values [U, seeds]) from ``metrics.jsonl``; NaN where no episode ended."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{path} has no updates yet")
    if f"{metric}/seeds" not in records[0]:
        raise ValueError(
            f"metric {metric!r} not in {path}; has {sorted(k for k in records[0] if '/' not in k)}"
        )
    steps = np.array([r["env_steps"] for r in records])
    values = np.array(
        [[np.nan if v is None else v for v in r[f"{metric}/seeds"]] for r in records], float
    )
    return steps, values


def plot_runs(
    run_dirs: list[str | Path],
    out: str | Path,
    metric: str = "return",
    labels: list[str] | None = None,
) -> Path:
    """One curve per run directory (its seeds averaged)."""
    labels = labels or [Path(r).name for r in run_dirs]
    if len(labels) != len(run_dirs):
        raise ValueError(f"{len(labels)} labels for {len(run_dirs)} runs")
    runs = {label: [Path(r)] for label, r in zip(labels, run_dirs, strict=True)}
    return plot_methods(runs, out, "", metric)


def curve(runs: list[Path], metric: str = "return") -> tuple[np.ndarray, np.ndarray]:
    """(env_steps [U], values [U, seeds]) over a method's runs (one with vmapped seeds, or one
    per seed), cut to the shortest."""
    curves = [load_curve(r, metric) for r in runs]
    u = min(len(steps) for steps, _ in curves)
    return curves[0][0][:u], np.concatenate([values[:u] for _, values in curves], 1)


def plot_methods(
    runs: dict[str, list[Path]],
    out: str | Path,
    title: str = "",
    metric: str = "return",
    x_per: float = 1.0,
    xlabel: str = "env-steps (per seed)",
    ylabel: str | None = None,
    smooth_steps: float = 0,
) -> Path:
    """Each method's mean curve with a 95% CI band over its seeds; the x axis is env-steps
    divided by ``x_per`` (e.g. the episode length). ``smooth_steps``: each seed's curve is
    first averaged over a moving window of that many env-steps."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for m, r in runs.items():
        steps, values = curve(r, metric)
        w = max(1, round(smooth_steps / (steps[1] - steps[0]))) if len(steps) > 1 else 1
        if w > 1:
            kernel = np.ones(w) / w
            values = np.stack([np.convolve(v, kernel, "valid") for v in values.T], 1)
            steps = steps[w - 1 :]
        with warnings.catch_warnings():  # updates in which no seed ended an episode: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, n = np.nanmean(values, 1), np.sum(~np.isnan(values), 1)
            ci = (
                np.nanstd(values, 1, ddof=1) * 1.96 / np.sqrt(n)
                if values.shape[1] > 1
                else 0 * mean
            )
        ax.plot(steps / x_per, mean, label=f"{m} ({values.shape[1]} seeds)")
        ax.fill_between(steps / x_per, mean - ci, mean + ci, alpha=0.2)
    ax.set(xlabel=xlabel, ylabel=ylabel or metric, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
