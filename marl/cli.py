"""Command-line entry points: ``commarl-train`` (Hydra), ``commarl-evaluate``, ``commarl-plot``."""

from __future__ import annotations

import inspect
import json
import os
import signal
import sys
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from marl.config import CONFIG_DIR, register_configs, to_config


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name="config")
def _train(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from marl.plot import plot_runs
    from marl.train import train

    hydra_cfg = HydraConfig.get()
    overrides = [o for o in hydra_cfg.overrides.task if not o.startswith("resume=")]
    if hydra_cfg.mode == RunMode.MULTIRUN and not any(o.startswith("run_dir=") for o in overrides):
        cfg.run_dir = hydra_cfg.runtime.output_dir  # this job's directory of the sweep
    with one_line_errors():
        run_dir = train(to_config(cfg), overrides=overrides if cfg.resume else ())
    curve = plot_runs([run_dir], run_dir / "curve.png")
    print(f"run directory: {run_dir}\n  learning curve: {curve}")
    print(f"  checkpoints: {run_dir / 'checkpoints'}\n  summary: {run_dir / 'summary.json'}")
    gifs = sorted((run_dir / "eval").glob("update_*.gif"), key=lambda p: int(p.stem[7:]))
    if gifs:
        print(f"  evaluation GIF: {gifs[-1]}")
    wandb_dir = run_dir / "wandb"
    if wandb_dir.exists():
        print(
            f"  W&B run: {wandb_dir} (offline runs upload with `wandb sync {wandb_dir}/offline-run-*`)"
        )


@contextmanager
def one_line_errors():
    """A user error (bad value, missing file or extra, unreadable checkpoint) as one line on
    stderr and exit status 1, unless ``HYDRA_FULL_ERROR=1`` asks for the traceback."""
    from marl.checkpoint import CheckpointError
    from marl.train import TrainingDiverged

    errors = (ValueError, FileNotFoundError, ModuleNotFoundError, OmegaConfBaseException)
    try:
        yield
    except (*errors, CheckpointError, TrainingDiverged) as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        # One line; OmegaConf's errors add "full_key: ..." and type lines.
        lines = [x.strip() for x in str(err).splitlines()]
        keep = [x for x in lines if not x.startswith(("reference_type", "object_type"))]
        raise SystemExit(f"error: {' '.join(keep)}") from None


def train_main() -> None:
    """``commarl-train``: Ctrl-C (or SIGTERM) stops with the resume command, exit status 130."""
    register_configs()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _train()
    except KeyboardInterrupt:
        sys.exit(130)


@dataclass
class EvaluateArgs:
    run: str = "???"  # a run directory
    checkpoint: int | None = None  # the update it was saved at; default the latest
    episodes: int = 100  # per seed and mode
    gif_episodes: int = 3
    env_options: dict[str, Any] = field(default_factory=dict)  # override the run's env options
    env_name: str | None = None  # another environment with the same spaces (zero-shot)
    comm_options: dict[str, Any] = field(default_factory=dict)  # override the run's comm config
    tag: str | None = None  # output name; default evaluate_<checkpoint>


def evaluate_main(argv: list[str] | None = None) -> None:
    """``commarl-evaluate run=<dir> [episodes=100] [gif_episodes=3] [checkpoint=<update>]
    [env_options.<name>=<value> ...] [env_name=<env>] [comm_options.<name>=<value> ...]
    [tag=<name>]``: the env options test a trained policy under other conditions (e.g.
    ``env_options.disturbance=0.15``), ``env_name`` on another environment with the same
    spaces (e.g. a hover policy on ``cable_load/track``), the comm options with an
    intervention on its channel (e.g. ``comm_options.heard=shuffled`` for ``comm=vq``)."""

    from marl.checkpoint import Checkpointer
    from marl.config import load_run_config
    from marl.evaluate import Evaluator, format_table
    from marl.train import build

    args = _parse(EvaluateArgs, argv, evaluate_main.__doc__)
    run_dir = Path(args.run)
    with one_line_errors():
        cfg = load_run_config(run_dir)
        cfg.eval.episodes, cfg.eval.gif_episodes = args.episodes, args.gif_episodes
        cfg.env.options = {**cfg.env.options, **args.env_options}
        cfg.env.name = args.env_name or cfg.env.name
        options = {f.name for f in fields(cfg.comm)} - {"name"}  # the channel stays the run's
        if unknown := args.comm_options.keys() - options:
            raise ValueError(
                f"comm_options: {sorted(unknown)} are not options of comm={cfg.comm.name} "
                f"(it has {sorted(options)})"
            )
        cfg.comm = replace(cfg.comm, **args.comm_options)
        env, policy, learner, template = build(cfg)
        checkpoints = Checkpointer(run_dir / "checkpoints", cfg.keep_checkpoints, create=False)
        state, update = checkpoints.restore_policy(template, args.checkpoint)
        tag = args.tag or f"evaluate_{update}"
        evaluator = Evaluator(cfg, env, policy, run_dir / "eval", learner.num_updates)
        results = evaluator(state, gif=True, tag=tag)
    results["checkpoint"] = update
    results["env_options"] = cfg.env.options
    out = run_dir / "eval" / f"{tag}.json"
    out.parent.mkdir(exist_ok=True)  # a run trained without evaluations has none
    out.write_text(json.dumps(results, indent=2))
    print(
        f"{cfg.env.name}, {cfg.policy.name}, checkpoint {update}: {cfg.num_seeds} seed(s) x {args.episodes} episodes per mode"
    )
    print(format_table(results))
    print(f"wrote {out}" + (f" and {results['gif']}" if "gif" in results else ""))


@dataclass
class PlotArgs:
    runs: list[str] = field(default_factory=list)  # run directories
    labels: list[str] | None = None
    metric: str = "return"
    out: str = "curves.png"


def plot_main(argv: list[str] | None = None) -> None:
    """``commarl-plot runs=[dir1,dir2] [labels=[a,b]] [metric=return] [out=curves.png]``."""
    from marl.plot import plot_runs

    args = _parse(PlotArgs, argv, plot_main.__doc__)
    if not args.runs:
        raise SystemExit("give runs=[dir1,dir2,...]")
    with one_line_errors():
        print(f"wrote {plot_runs(args.runs, args.out, args.metric, args.labels)}")


def _parse(schema, argv: list[str] | None, usage: str):
    """``key=value`` arguments checked against ``schema``; ``--help`` prints ``usage`` and the
    keys with their defaults."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help", "help") for a in argv):
        print(inspect.cleandoc(usage) + "\n\narguments (default):")
        for f in fields(schema):
            default = f.default_factory() if f.default_factory is not MISSING else f.default
            print(f"  {f.name}={default}")
        raise SystemExit(0)
    try:
        cli = OmegaConf.from_dotlist(argv)
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), cli))
    except OmegaConfBaseException as err:
        raise SystemExit(f"bad arguments: {err}") from None
