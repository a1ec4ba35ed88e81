"""Where metrics go: a console progress bar, ``metrics.jsonl`` and a W&B run.

W&B runs offline unless the user is logged in (``wandb sync <run>/wandb/offline-run-*``
uploads later); ``logger.wandb.mode=disabled`` turns it off.
"""

from __future__ import annotations

import json
import netrc
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from marl.config import Config, WandbMode, sweep_members


def wandb_mode(mode: WandbMode) -> str:
    """``auto`` is online when an API key is configured, offline otherwise."""
    if mode is not WandbMode.auto:
        return mode.value
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        logged_in = netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        logged_in = False
    return "online" if logged_in else "offline"


@contextmanager
def _signals_to(handler) -> Iterator[None]:
    """Ctrl-C / SIGTERM go to ``handler`` within the block (only the main thread has them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, old in before.items():
            signal.signal(s, signal.SIG_DFL if old is None else old)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM until the block has run, then deliver them: a logged update reaches
    ``metrics.jsonl`` and W&B both or neither, so a resume sends W&B each update once."""
    caught: list[int] = []
    try:
        with _signals_to(lambda sig, _: caught.append(sig)):
            yield
    finally:
        for sig in dict.fromkeys(caught):
            signal.raise_signal(sig)


@contextmanager
def interrupts_kept() -> Iterator[list[int]]:
    """Ctrl-C / SIGTERM raise ``KeyboardInterrupt`` as usual, and each is also kept in the list
    yielded: Python drops an exception raised inside a finaliser or a JAX callback (it prints
    "Exception ignored in ..." and goes on), so the training loop raises again for what it
    finds there at the next chunk boundary."""
    kept: list[int] = []

    def keep(sig: int, _) -> None:
        kept.append(sig)
        raise KeyboardInterrupt

    with _signals_to(keep):
        yield kept


class Logger:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        total_updates: int,
        steps_per_update: int,
        start_update: int = 0,
        enabled: bool = True,
    ):
        """``enabled=False`` (processes other than 0 of a multi-process run): writes nothing."""
        self.enabled = enabled
        self.progress, self.wandb = None, None
        if not enabled:
            return
        self.run_dir = run_dir
        self.steps_per_update = steps_per_update
        self.update = start_update
        self.total_updates = total_updates
        # A resumed run restarts from its checkpoint: the logs keep each update once, and W&B
        # (which cannot drop what it got) is sent only what it has not had.
        self.wandb_had = truncate_log(run_dir / "metrics.jsonl", start_update)
        self.wandb_had_eval = truncate_log(run_dir / "eval" / "history.jsonl", start_update)
        self.metrics_file = (run_dir / "metrics.jsonl").open("a")
        self.points = sweep_members(cfg)  # a sweep's configurations -> their members
        self.last: dict[str, Any] = {}
        self.last_eval: dict[str, Any] | None = None
        self.console_out = Console(soft_wrap=True)  # paths and commands stay on one line
        mode = wandb_mode(cfg.logger.wandb.mode)
        if mode != "disabled":
            import wandb

            w = cfg.logger.wandb
            id_file = run_dir / "wandb_id"
            run_id = id_file.read_text() if id_file.exists() else uuid.uuid4().hex[:8]
            id_file.write_text(run_id)
            self.wandb = wandb.init(
                project=w.project,
                entity=w.entity,
                group=w.group,
                tags=list(w.tags),
                name=run_dir.name,
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                mode=mode,
                config=OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True),
            )
        if cfg.logger.progress:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console_out,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=total_updates, completed=start_update, info="compiling"
            )
        self.console(f"run directory: {run_dir}")

    def console(self, message: str) -> None:
        if self.enabled:
            self.console_out.print(message)

    @interrupts_deferred()
    def log_updates(self, metrics: dict[str, np.ndarray], seconds: float) -> None:
        """Write one record per update of a chunk; ``metrics[k]`` is ``[updates, seeds, ...]``:
        scalars, vectors or matrices per seed (W&B gets matrices of the chunk's last update
        as heatmaps)."""
        if not self.enabled:
            return
        n = len(next(iter(metrics.values())))
        for i in range(n):
            self.update += 1
            record: dict[str, Any] = {
                "update": self.update,
                "env_steps": self.update * self.steps_per_update,
            }
            means = {}
            for k, v in metrics.items():
                seeds = np.asarray(v[i], np.float64)
                means[k] = seed_mean(seeds)
                record[k] = jsonable(means[k])
                record[f"{k}/seeds"] = jsonable(seeds)
            returns = np.asarray(metrics["return"][i], np.float64)
            points = {f"return/{p}": seed_mean(returns[m]) for p, m in self.points.items()}
            record.update({k: jsonable(v) for k, v in points.items()})
            self.metrics_file.write(json.dumps(record) + "\n")
            if self.wandb is not None and self.update > self.wandb_had:
                per_seed = {f"return/seed{j}": x for j, x in enumerate(record["return/seeds"])}
                self._wandb_log(
                    {**means, **points}, per_seed, step=record["env_steps"], images=i == n - 1
                )
            self.last = record
        self.metrics_file.flush()
        rate = (
            n
            * self.steps_per_update
            * len(np.atleast_1d(metrics["return"][0]))
            / max(seconds, 1e-9)
        )
        ret = self.last.get("return")
        info = f"env-steps/s {rate:,.0f}  return " + ("n/a" if ret is None else f"{ret:.2f}")
        if self.progress is not None:
            self.progress.update(self.task, completed=self.update, info=info)
        else:
            self.console(f"update {self.update}/{self.total_updates}  {info}")

    @interrupts_deferred()
    def log_eval(self, results: dict[str, Any]) -> None:
        if not self.enabled:
            return
        out = self.run_dir / "eval"
        out.mkdir(exist_ok=True)
        with (out / "history.jsonl").open("a") as f:
            f.write(json.dumps({"update": self.update, **results}) + "\n")
        det, sto = results["deterministic"]["return"], results["stochastic"]["return"]
        self.console(
            f"eval @ {self.update}: return {det[0]:.2f} ± {det[1]:.2f} greedy, "
            f"{sto[0]:.2f} ± {sto[1]:.2f} sampled"
        )
        if self.wandb is not None and self.update > self.wandb_had_eval:
            import wandb

            values, extra = {}, {}
            for m in ("deterministic", "stochastic"):
                for k, v in results[m].items():
                    if k == "statistics":
                        values.update(
                            {f"eval/{m}/{s}": np.asarray(x, np.float64) for s, x in v.items()}
                        )
                    elif k != "per_seed":
                        values[f"eval/{m}/{k}"] = np.asarray(v[0])
            if "gif" in results:
                extra["eval/video"] = wandb.Video(results["gif"], format="gif")
            self._wandb_log(values, extra, step=self.update * self.steps_per_update, images=True)
        self.last_eval = results

    def _wandb_log(self, values: dict[str, np.ndarray], extra: dict, step: int, images: bool):
        """Scalars as numbers, vectors as bar histograms over their index, matrices (e.g. an
        N x N adjacency; more axes folded into the rows) as heatmap images when ``images``."""
        import wandb

        logs = dict(extra)
        for k, v in values.items():
            if v.ndim == 0:
                if not np.isnan(v):  # NaN: no episode ended in the update
                    logs[k] = float(v)
            elif v.ndim == 1:
                logs[k] = wandb.Histogram(np_histogram=(np.nan_to_num(v), np.arange(len(v) + 1)))
            elif images:  # more than two axes: the leading ones as rows
                logs[k] = wandb.Image(heatmap(v.reshape(-1, v.shape[-1]), k))
        self.wandb.log(logs, step=step)

    def close(self, write_summary: bool = False) -> None:
        """Stop the progress bar, close files and the W&B run; ``summary.json`` if finished."""
        if not self.enabled:
            return
        if write_summary:
            summary = {
                "updates": self.update,
                "env_steps": self.update * self.steps_per_update,
                "final": self.last,
                "eval": self.last_eval,
            }
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        if self.progress is not None:
            self.progress.stop()
        self.metrics_file.close()
        if self.wandb is not None:
            self.wandb.finish()


def truncate_log(path: Path, upto: int) -> int:
    """Keep the records of updates up to ``upto`` in a JSON-lines log (and drop a line torn by
    a kill) -> the last update the log held before (0 if none)."""
    if not path.exists():
        return 0
    keep, last = [], 0
    for line in path.read_text().splitlines():
        try:
            update = json.loads(line)["update"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
        last = max(last, update)
        if update <= upto:
            keep.append(line + "\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(keep))
    os.replace(tmp, path)
    return last


def seed_mean(x: np.ndarray) -> np.ndarray:
    """Mean over seeds (axis 0), skipping NaN (no episode ended); NaN where all are."""
    count = np.sum(~np.isnan(x), 0)
    return np.where(count > 0, np.nansum(x, 0) / np.maximum(count, 1), np.nan)


def jsonable(x: np.ndarray) -> Any:
    """Numbers or nested lists for JSON, NaN as null."""
    x = np.asarray(x, np.float64)
    if x.ndim == 0:
        return None if np.isnan(x) else float(x)
    return [jsonable(v) for v in x]


def heatmap(matrix: np.ndarray, title: str) -> np.ndarray:
    """An RGB image ``[H, W, 3]`` of a matrix drawn as a heatmap with a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3.4), dpi=100)
    image = ax.imshow(np.asarray(matrix, np.float64), cmap="viridis")
    fig.colorbar(image, ax=ax)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
