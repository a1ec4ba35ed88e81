"""Many run directories -> one table and one figure, with rliable (the ``analysis`` extra).

    python scripts/aggregate.py runs/2026*/ [--by comm.name policy.name] [--task env.name]
        [--score train|eval] [--baseline NAME] [--out aggregate]

Runs are grouped into methods by the config values in ``--by`` (default: every value in which
the runs' configs differ, apart from the task, seeds, run directory and logging), and into
tasks by ``--task``; a sweep run (``sweep.*``) counts as one run per configuration
(``points/<configuration>/``), and a method's seeds pool over its runs. Each seed's score is
its training return over the last 10% of updates (``--score train``) or its greedy return at
the final evaluation (``--score eval``). With several tasks, scores are min-max normalised per
task over all runs (so that tasks weigh alike). Writes ``<out>.md`` (per task: mean ± 95% CI
over seeds; over tasks: rliable's IQM with stratified-bootstrap 95% CIs and the probability
of improvement over ``--baseline``, or between every pair), ``<out>.json``, ``<out>.png``
(rliable's interval estimates) and ``<out>_curves_<task>.png`` (learning curves).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from marl.compare import compare, final_scores, markdown
from marl.evaluate import mean_ci
from marl.plot import plot_methods

# Config values that never tell methods apart.
IGNORED = ("run_dir", "resume", "seed", "num_seeds", "logger.", "eval.", "checkpoint", "keep_")


def finished_runs(paths: list[str]) -> list[Path]:
    """The finished runs among ``paths`` (a sweep run as its configurations)."""
    runs = []
    for path in map(Path, paths):
        points = sorted(p.parent for p in path.glob("points/*/summary.json"))
        if points:
            runs += points
        elif (path / "summary.json").exists():
            runs.append(path)
        else:
            print(f"skipped {path}: not a finished run (no summary.json)", file=sys.stderr)
    if not runs:
        raise SystemExit("error: no finished runs among the paths given")
    return runs


def flat_config(run: Path) -> dict[str, str]:
    cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True)

    def walk(node, prefix=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, f"{prefix}{k}.")
        else:
            yield prefix[:-1], json.dumps(node)

    return dict(walk(cfg))


def seed_scores(run: Path, score: str) -> np.ndarray:
    """[seeds] of a run."""
    if score == "train":
        return final_scores([run])
    last = json.loads((run / "summary.json").read_text())["eval"]
    if last is None:
        raise SystemExit(f"error: {run} has no evaluation: use --score train")
    return np.asarray(last["deterministic"]["per_seed"]["return"], np.float64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--by", nargs="*", help="config keys that name a method")
    p.add_argument("--task", nargs="+", default=["env.name"], help="config keys that name a task")
    p.add_argument("--score", choices=["train", "eval"], default="train")
    p.add_argument("--baseline", help="a method to compare every other one with")
    p.add_argument("--out", default="aggregate", help="output path without extension")
    a = p.parse_args()

    runs = finished_runs(a.runs)
    configs = {r: flat_config(r) for r in runs}
    keys = sorted({k for c in configs.values() for k in c})
    missing = [k for k in [*(a.by or []), *a.task] if k not in keys]
    if missing:
        raise SystemExit(f"error: no config key {', '.join(missing)} in these runs")

    def name(run: Path, keys: list[str]) -> str:
        return (
            ",".join(f"{k}={json.loads(configs[run][k])}" for k in keys if k in configs[run])
            or "all"
        )

    def differs(key: str) -> bool:
        """Whether ``key`` differs between runs of one task (a policy's or channel's option:
        between runs of one policy or channel; its name tells the others apart)."""
        groups = [g for g in ("policy", "comm") if key.startswith(f"{g}.") and key != f"{g}.name"]
        scope = f"{groups[0]}.name" if groups else None
        values = defaultdict(set)
        for r, c in configs.items():
            values[name(r, a.task), c.get(scope) if scope else None].add(c.get(key))
        return any(len(v) > 1 for v in values.values())

    candidates = [k for k in keys if k not in a.task and not k.startswith(IGNORED)]
    names = ["policy.name", "comm.name"]  # first in a method's name
    by = a.by or sorted(
        (k for k in candidates if differs(k)),
        key=lambda k: (names.index(k) if k in names else 2, k),
    )

    grouped: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        grouped[name(r, a.task)][name(r, by)].append(r)
    tasks, methods = sorted(grouped), sorted({m for t in grouped.values() for m in t})
    scores = {
        t: {m: np.concatenate([seed_scores(r, a.score) for r in rs]) for m, rs in g.items()}
        for t, g in grouped.items()
    }
    absent = [f"{m} on {t}" for t in tasks for m in methods if m not in scores[t]]
    if absent:
        raise SystemExit(f"error: no runs of {', '.join(absent)}")
    seeds = min(len(s) for t in tasks for s in scores[t].values())
    if any(len(s) != seeds for t in tasks for s in scores[t].values()):
        print(f"note: every method x task is cut to its first {seeds} seed(s)", file=sys.stderr)

    lines = [f"# {len(runs)} runs: {len(methods)} method(s) x {len(tasks)} task(s)", ""]
    lines += [
        f"Methods by `{', '.join(by) or '-'}`; tasks by `{', '.join(a.task)}`; score: "
        f"{'training return, last 10% of updates' if a.score == 'train' else 'final greedy evaluation return'}, per seed.",
        "",
    ]
    for t in tasks:
        lines += [f"## {t}", "", "| method | seeds | mean ± 95% CI |", "| --- | ---: | ---: |"]
        lines += [
            f"| {m} | {len(s)} | {mean_ci(s)[0]:.2f} ± {mean_ci(s)[1]:.2f} |"
            for m, s in scores[t].items()
        ]
        lines.append("")
        plot_methods(grouped[t], f"{a.out}_curves_{t.replace('/', '-')}.png", t)
    # [seeds, tasks] per method, min-max normalised per task when there are several.
    matrix = {m: np.stack([scores[t][m][:seeds] for t in tasks], 1) for m in methods}
    if len(tasks) > 1:
        for j in range(len(tasks)):
            column = np.concatenate([x[:, j] for x in matrix.values()])
            lo, hi = column.min(), column.max()
            for x in matrix.values():
                x[:, j] = (x[:, j] - lo) / max(hi - lo, 1e-12)
    baseline = [a.baseline] if a.baseline else methods
    if a.baseline and a.baseline not in methods:
        raise SystemExit(f"error: --baseline {a.baseline} is not a method; methods: {methods}")
    pairs = [(x, y) for y in baseline for x in methods if x != y]
    result = compare(matrix, pairs)
    scale = "min-max normalised per task" if len(tasks) > 1 else "return"
    lines += [f"## Over tasks ({scale})", "", *markdown(result), ""]
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{a.out}.md").write_text("\n".join(lines))
    Path(f"{a.out}.json").write_text(
        json.dumps(
            {
                "by": by,
                "task": a.task,
                "score": a.score,
                "tasks": {t: {m: s.tolist() for m, s in g.items()} for t, g in scores.items()},
                "runs": {name(r, a.task) + " / " + name(r, by): str(r) for r in runs},
                **result,
            },
            indent=2,
        )
    )
    plot_iqm(result, scale, Path(f"{a.out}.png"))
    print("\n".join(lines))
    print(f"wrote {a.out}.md, {a.out}.json, {a.out}.png and the curves")


def plot_iqm(result: dict, scale: str, out: Path) -> None:
    from rliable import plot_utils

    methods = list(result["methods"])
    point = {m: np.array([r["iqm"]]) for m, r in result["methods"].items()}
    interval = {m: np.array(r["iqm_ci"])[:, None] for m, r in result["methods"].items()}
    fig, _ = plot_utils.plot_interval_estimates(
        point,
        interval,
        ["IQM"],
        algorithms=methods,
        xlabel=scale,
        subfigure_width=5,
        row_height=0.5,
    )
    fig.savefig(out, bbox_inches="tight", dpi=120)


if __name__ == "__main__":
    main()
