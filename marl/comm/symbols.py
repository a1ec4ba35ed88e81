"""Statistics of emergent symbols: codebook usage and perplexity, dead codes, distinct
sequences, the rank-frequency law of the sequences with two power-law fits, and the mutual
information between symbols and a task variable.

Each agent's message is a sequence of ``L`` symbols from an alphabet of ``K``; a "sequence"
is the whole message (all ``L`` symbols), a "symbol" one position of it. Used by the VQ
channel's evaluation hook (``VQChannel.statistics``) and by the experiment scripts.

Power law: the rank-frequency curve ``f(r) ~ r^-s`` of the sequences, ranks 1..R where R is
the last rank with at least ``min_count`` uses (the fit's range, reported as ``fit_ranks``):
``slope_lsq`` is minus the slope of the least-squares line through ``(log r, log f)``;
``alpha_mle`` the discrete maximum-likelihood exponent of a power law truncated to ranks
1..R, ``p(r) = r^-s / sum_{q<=R} q^-s``, fitted to the uses of those ranks.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar


def rank_counts(sequences: np.ndarray) -> np.ndarray:
    """``[M, L]`` int sequences (or ``[M]`` symbols) -> use counts, most used first ``[R]``."""
    seqs = sequences.reshape(len(sequences), -1)
    return np.array(sorted(Counter(map(tuple, seqs.tolist())).values(), reverse=True))


def fit_power_law(counts: np.ndarray, min_count: int = 1) -> dict[str, float]:
    """Fits ``f(r) ~ r^-s`` to rank-ordered ``counts`` over ranks 1..R (see the module)."""
    counts = np.asarray(counts, np.float64)
    r_max = int(np.sum(counts >= min_count))
    if r_max < 2:
        return {"slope_lsq": np.nan, "alpha_mle": np.nan, "fit_ranks": float(r_max)}
    c = counts[:r_max]
    log_r = np.log(np.arange(1, r_max + 1))
    slope = np.polyfit(log_r, np.log(c), 1)[0]

    def nll(s):  # -log-likelihood of the uses of ranks 1..R, per use
        return s * np.sum(c * log_r) / c.sum() + np.log(np.sum(np.exp(-s * log_r)))

    alpha = minimize_scalar(nll, bounds=(0.0, 10.0), method="bounded").x
    return {"slope_lsq": float(-slope), "alpha_mle": float(alpha), "fit_ranks": float(r_max)}


def entropy(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a distribution given by counts."""
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def mutual_information(x: np.ndarray, y: np.ndarray) -> float:
    """Plug-in mutual information in bits between two discrete variables ``[M]`` (``x`` may
    be ``[M, L]`` sequences, each a single value)."""
    _, xi = np.unique(x.reshape(len(x), -1), axis=0, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    joint = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(joint, (xi.ravel(), yi.ravel()), 1)
    return entropy(joint.sum(1)) + entropy(joint.sum(0)) - entropy(joint.ravel())


def symbol_statistics(
    symbols: np.ndarray,
    k: int,
    tasks: dict[str, np.ndarray] | None = None,
    min_count: int = 2,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """``symbols [M, N, L]``: M messages of N agents, L symbols each, from K. ``tasks``: name
    -> ``[M]`` or per agent ``[M, N]`` discrete task variables. -> per agent ``[N]``:
    ``perplexity`` (of the symbols, all positions), ``dead_codes`` (never used),
    ``distinct_sequences``, ``top_share`` (the most used sequence's share), the power-law
    fit of the sequences (``slope_lsq``, ``alpha_mle``, ``fit_ranks``; ranks with at least
    ``min_count`` uses), ``mi/<task>`` (bits, sequences vs task) and ``mi_shuffled/<task>``
    (the same with the task shuffled across messages: the plug-in estimate's value for symbols
    unrelated to the task), and ``rank_counts`` ``[N, R]``: each agent's sequence counts,
    most used first (zero-padded). All under ``symbols/``."""
    m, n, _ = symbols.shape
    rng = np.random.default_rng(seed)
    rows: list[dict[str, float]] = []
    ranked = [rank_counts(symbols[:, i]) for i in range(n)]
    for i, counts in enumerate(ranked):
        own = symbols[:, i]  # [M, L]
        usage = np.bincount(own.ravel(), minlength=k)
        row = {
            "perplexity": 2.0 ** entropy(usage),
            "dead_codes": float(np.sum(usage == 0)),
            "distinct_sequences": float(len(counts)),
            "top_share": counts[0] / m,
            **fit_power_law(counts, min_count),
        }
        for name, value in (tasks or {}).items():
            target = value[:, i] if value.ndim == 2 else value
            row[f"mi/{name}"] = mutual_information(own, target)
            row[f"mi_shuffled/{name}"] = mutual_information(own, rng.permutation(target))
        rows.append(row)
    padded = np.zeros((n, max(map(len, ranked))))
    for i, counts in enumerate(ranked):
        padded[i, : len(counts)] = counts
    stats = {f"symbols/{key}": np.array([r[key] for r in rows]) for key in rows[0]}
    return {**stats, "symbols/rank_counts": padded}


def episode_statistics(symbols: np.ndarray, k: int, episodes) -> dict[str, np.ndarray]:
    """``symbol_statistics`` of each seed's evaluation steps, stacked ``[S, ...]``: ``symbols
    [S, T, E, N, L]`` recorded in ``episodes`` (``marl.evaluate.Episodes``), whose ``task/...``
    infos are the task variables."""
    valid = np.asarray(episodes.valid)  # [S, T, E]
    from marl.rollout import task_variables

    tasks = {name: np.asarray(v) for name, v in task_variables(episodes.info).items()}
    per_seed = [
        symbol_statistics(symbols[s][v], k, {name: t[s][v] for name, t in tasks.items()})
        for s, v in enumerate(valid)
    ]
    width = max(p["symbols/rank_counts"].shape[-1] for p in per_seed)
    for p in per_seed:
        counts = p["symbols/rank_counts"]
        p["symbols/rank_counts"] = np.pad(counts, ((0, 0), (0, width - counts.shape[-1])))
    return {key: np.stack([p[key] for p in per_seed]) for key in per_seed[0]}


def plot_rank_frequency(
    counts: np.ndarray, out: str | Path, title: str = "", min_count: int = 2, labels=None
) -> Path:
    """Rank-frequency curves on log-log axes, one per row of ``counts [C, R]`` (each row's
    counts most used first, zero-padded: ``symbol_statistics``'s ``rank_counts``), with both
    power-law fits in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for i, row in enumerate(np.atleast_2d(counts)):
        row = row[row > 0]
        fit = fit_power_law(row, min_count)
        name = labels[i] if labels else f"agent {i}"
        label = (
            f"{name}: s = {fit['slope_lsq']:.2f} (LS), {fit['alpha_mle']:.2f} (MLE), "
            f"ranks 1-{fit['fit_ranks']:.0f}"
        )
        ax.loglog(np.arange(1, len(row) + 1), row / row.sum(), "o", ms=3, label=label)
    ax.set(xlabel="rank of the sequence", ylabel="frequency")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
