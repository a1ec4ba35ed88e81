"""Typed configuration: the schema Hydra validates ``configs/`` and overrides against.

A typo in a key or a value of the wrong type fails at start-up with a message naming the
key (OmegaConf structured configs). Each policy and communication channel registers its own
config dataclass, so ``policy.*`` and ``comm.*`` are checked against the chosen one's;
names of environments, policies and channels are checked against their registries, which
list what exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from itertools import product
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class Activation(StrEnum):
    tanh = "tanh"
    relu = "relu"
    gelu = "gelu"
    elu = "elu"


class WandbMode(StrEnum):
    auto = "auto"  # online when logged in, offline otherwise
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class EnvConfig:
    name: str = "mpe/spread"  # a registered JAX env, or "pettingzoo:<module>" (host side)
    options: dict[str, Any] = field(default_factory=dict)  # keyword options of the env
    num_envs: int = 16
    # Every training episode starts from the same state, one per seed (the HAMMER reference's
    # ``reset(seed)`` before each episode); evaluation episodes still start at random.
    fixed_start: bool = False
    # Agents see only their first ``observe_first`` observation values (the rest zeroed):
    # all agents (HAMMER's partial observation), or those in ``observe_first_agents``
    # (its heterogeneity ablation: one agent).
    observe_first: int | None = None
    observe_first_agents: list[int] | None = None


class AlgoName(StrEnum):
    ppo = "ppo"  # clipped surrogate, epochs x minibatches
    a2c = "a2c"  # advantage actor-critic: one gradient step per rollout, no ratio


class ValueLoss(StrEnum):
    mse = "mse"
    huber = "huber"


class Returns(StrEnum):
    gae = "gae"  # GAE(lambda), bootstrapped at truncations and at the rollout's end
    # The HAMMER reference's: discounted Monte-Carlo returns up to each episode's end (or the
    # rollout's end; no bootstrap), normalised per unit over the batch; advantage = return - V.
    mc_normalised = "mc_normalised"


class ScheduleKind(StrEnum):
    constant = "constant"
    linear = "linear"  # from the value to ``end`` x the value over the run
    exponential = "exponential"  # the value x ``decay`` ** update


@dataclass
class Schedule:
    """A value as a function of the update index (learning rates, entropy weight)."""

    kind: ScheduleKind = ScheduleKind.constant
    end: float = 0.0  # linear: the value at the end of training, as a fraction of the start
    decay: float = 1.0  # exponential: factor per update


@dataclass
class GroupConfig:
    """How one parameter group (declared by the policy) is optimised: Adam at its own rate,
    clipped or not, and when it steps. A group that does not step keeps its parameters and
    its Adam moments bitwise unchanged."""

    lr: float | None = None  # None: algo.lr
    schedule: Schedule | None = None  # None: algo.lr_schedule
    clip: bool = True  # clip its gradient (with the other clipped groups, by algo.max_grad_norm)
    max_grad_norm: float | None = None  # clip it alone, by this norm
    frozen: bool = False  # never steps
    epoch_period: int = 1  # steps on the epochs e with e % epoch_period in ``epochs``
    epochs: list[int] | None = None  # None: every epoch
    start: float = 0.0  # steps while start <= fraction of training done < stop
    stop: float = 1.0


@dataclass
class AlgoConfig:
    name: AlgoName = AlgoName.ppo
    total_timesteps: int = 2_000_000  # env-steps per seed
    num_steps: int = 128  # rollout length per update
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2.5e-4
    lr_schedule: Schedule = field(default_factory=lambda: Schedule(ScheduleKind.linear))
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    returns: Returns = Returns.gae
    clip_eps: float = 0.2
    clip_value: bool = True
    vf_coef: float = 0.5
    value_loss: ValueLoss = ValueLoss.mse
    huber_delta: float = 10.0
    ent_coef: float = 0.01
    ent_schedule: Schedule = field(default_factory=Schedule)
    normalize_advantages: bool = True
    normalize_values: bool = False  # critic learns normalised returns (running mean/std)
    normalize_obs: bool = False  # running mean/std of observations
    # Per parameter group (the policy declares them): GroupConfig fields that override the
    # policy's own settings, e.g. {actor: {lr: 3e-4}, edges: {epoch_period: 5, epochs: [4]}}.
    groups: dict[str, Any] = field(default_factory=dict)


@dataclass
class WandbConfig:
    mode: WandbMode = WandbMode.auto
    project: str = "commarl"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    wandb: WandbConfig = field(default_factory=WandbConfig)
    progress: bool = True  # console progress bar
    num_chunks: int = 20  # host-side logging/eval/checkpoint points over the run


@dataclass
class EvalConfig:
    episodes: int = 32  # per evaluation, per mode
    gif_episodes: int = 2
    every_chunks: int = 5  # evaluate (and record a GIF) every this many chunks; 0 = end only


@dataclass
class PolicyConfig:
    """Base of every policy's config; each policy registers its own subclass (its schema)."""

    name: str = MISSING  # see marl.policies.POLICIES


@dataclass
class CommConfig:
    """Base of every channel's config; each channel registers its own subclass."""

    name: str = "none"  # see marl.comm.CHANNELS


@dataclass
class DistributedConfig:
    """Several processes (hosts) training one run (``marl.distributed``): the coordinator and
    this process's place, or ``auto`` where JAX detects them (SLURM, TPU pods, Open MPI)."""

    coordinator_address: str | None = None  # "host:port" of process 0
    num_processes: int | None = None  # recorded in the run's config: a resume needs as many
    process_id: int | None = None
    auto: bool = False


@dataclass
class SweepAlgo:
    """algo's numeric hyperparameters, which the update reads from the training state (one
    value per seed): a sweep lists values of some of them."""

    lr: list[float] | None = None
    adam_eps: list[float] | None = None
    max_grad_norm: list[float] | None = None
    gamma: list[float] | None = None
    gae_lambda: list[float] | None = None
    clip_eps: list[float] | None = None
    vf_coef: list[float] | None = None
    huber_delta: list[float] | None = None
    ent_coef: list[float] | None = None


@dataclass
class SweepConfig:
    algo: SweepAlgo = field(default_factory=SweepAlgo)


@dataclass
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    # The chosen policy's and channel's own configs: plain here, checked in ``to_config``
    # against the dataclass that their ``name`` registered.
    policy: Any = field(default_factory=lambda: {"name": "mappo"})
    comm: Any = field(default_factory=lambda: {"name": "none"})
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    num_seeds: int = 1  # vmapped in one program
    run_dir: str = "runs/default"
    resume: str | None = None  # a run directory to continue
    # A run directory whose latest policy (parameters, method state, observation and value
    # statistics) this run starts from, with a fresh optimiser: fine-tuning, curricula.
    init_from: str | None = None
    checkpoint_every_chunks: int = 1
    keep_checkpoints: int = 3
    # Values of algo's numeric hyperparameters trained side by side in one program, e.g.
    # sweep.algo.lr=[1e-4,3e-4,1e-3]: every combination x every seed (marl.sweep); sweep
    # structural choices (env, policy, comm, sizes) with a Hydra multirun (-m).
    sweep: SweepConfig = field(default_factory=SweepConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


def register_configs() -> None:
    """The schema for Hydra, and ``${slug:<env name>}`` for run directories (``mpe/spread`` ->
    ``mpe-spread``, ``pettingzoo:pettingzoo.sisl.multiwalker_v9`` -> ``multiwalker_v9``)."""
    ConfigStore.instance().store(name="schema", node=Config)
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver(
            "slug", lambda name: name.rsplit(".", 1)[-1] if ":" in name else name.replace("/", "-")
        )


def to_config(cfg: DictConfig | dict) -> Config:
    """Validate a plain or Hydra config against the schema and return the typed object.

    The config is merged as plain data, so keys that Hydra let in (``+algo.lrr=1``) are
    rejected here too, with the key's full name. ``policy`` and ``comm`` are checked against
    the schema their ``name`` registered (``marl.policies.POLICIES``, ``marl.comm.CHANNELS``).
    """
    from marl.comm import CHANNELS
    from marl.policies import POLICIES

    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    data = {k: v for k, v in data.items() if k != "hydra"}
    schema = OmegaConf.structured(Config)
    for group, registry in (("policy", POLICIES), ("comm", CHANNELS)):
        name = {**schema[group], **(data.get(group) or {})}["name"]
        if name not in registry:
            raise ValueError(f"unknown {group} {name!r}; {group} options are {sorted(registry)}")
        schema[group] = OmegaConf.structured(registry[name].config)
    cfg = OmegaConf.to_object(OmegaConf.merge(schema, data))
    check_domains(cfg)
    sweep_points(cfg)
    return cfg


AT_LEAST_ONE = (">= 1", lambda v: v >= 1)
POSITIVE = ("> 0", lambda v: v > 0)
NON_NEGATIVE = (">= 0", lambda v: v >= 0)
FRACTION = ("in [0, 1]", lambda v: 0 <= v <= 1)


def domain(rule: tuple) -> dict:
    """``field(metadata=domain(AT_LEAST_ONE))``: a policy's or channel's option with a domain."""
    return {"domain": rule}


WIDTHS = domain(AT_LEAST_ONE)  # layer sizes, heads, blocks

DOMAINS = {  # the values with a domain; ``None`` passes (a default chosen elsewhere)
    "num_seeds": AT_LEAST_ONE,
    "checkpoint_every_chunks": AT_LEAST_ONE,
    "keep_checkpoints": AT_LEAST_ONE,
    "distributed.num_processes": AT_LEAST_ONE,
    "distributed.process_id": NON_NEGATIVE,
    "env.num_envs": AT_LEAST_ONE,
    "env.observe_first": AT_LEAST_ONE,
    "algo.total_timesteps": AT_LEAST_ONE,
    "algo.num_steps": AT_LEAST_ONE,
    "algo.update_epochs": AT_LEAST_ONE,
    "algo.num_minibatches": AT_LEAST_ONE,
    "algo.lr": POSITIVE,
    "algo.lr_schedule.end": NON_NEGATIVE,
    "algo.lr_schedule.decay": POSITIVE,
    "algo.adam_eps": POSITIVE,
    "algo.max_grad_norm": POSITIVE,
    "algo.gamma": FRACTION,
    "algo.gae_lambda": FRACTION,
    "algo.clip_eps": POSITIVE,
    "algo.vf_coef": NON_NEGATIVE,
    "algo.huber_delta": POSITIVE,
    "algo.ent_coef": NON_NEGATIVE,
    "algo.ent_schedule.end": NON_NEGATIVE,
    "algo.ent_schedule.decay": POSITIVE,
    "logger.num_chunks": AT_LEAST_ONE,
    "eval.episodes": AT_LEAST_ONE,
    "eval.gif_episodes": NON_NEGATIVE,
    "eval.every_chunks": NON_NEGATIVE,
}


def check_domains(cfg: Config) -> None:
    """Every value of ``DOMAINS``, and every policy and channel option declared with a
    ``domain`` (``field(metadata=domain(...))``; lists: each element), inside its domain, or
    one error naming each one outside."""
    bad, tree = [], OmegaConf.structured(cfg)
    checks = [(key, rule, OmegaConf.select(tree, key)) for key, rule in DOMAINS.items()]
    for group in ("policy", "comm"):
        options = getattr(cfg, group)
        checks += [
            (f"{group}.{f.name}", f.metadata["domain"], getattr(options, f.name))
            for f in fields(options)
            if "domain" in f.metadata
        ]
    for key, (domain, ok), value in checks:
        values = value if isinstance(value, list) else [value]
        if value is not None and not all(ok(v) for v in values):
            bad.append(f"{key}={value} (must be {domain})")
    if bad:
        raise ValueError(f"out of range: {', '.join(bad)}")


SWEEPABLE = tuple(f.name for f in fields(SweepAlgo))


def sweep_points(cfg: Config) -> list[dict[str, float]]:
    """The configurations of ``cfg.sweep`` (every combination of the swept values, in order)
    as ``{"algo.lr": 1e-4, ...}``; ``[{}]`` without a sweep. Keys, types and domains are
    checked."""
    flat = {f"algo.{k}": v for k in SWEEPABLE if (v := getattr(cfg.sweep.algo, k)) is not None}
    bad = []
    for key, values in flat.items():
        if not values:
            bad.append(f"sweep.{key}=[] (give one or more values)")
        domain, ok = DOMAINS[key]
        bad += [f"sweep.{key}: {v} (must be {domain})" for v in values if not ok(v)]
    if bad:
        raise ValueError(f"out of range: {', '.join(bad)}")
    return [dict(zip(flat, combo, strict=True)) for combo in product(*flat.values())]


def sweep_members(cfg: Config) -> dict[str, slice]:
    """A sweep's configurations, labelled ``lr=0.0003,ent_coef=0.01``, -> their members of the
    seed axis (configuration-major); ``{}`` without a sweep."""
    points, s = sweep_points(cfg), cfg.num_seeds
    if len(points) == 1:
        return {}
    labels = [",".join(f"{k.removeprefix('algo.')}={v:g}" for k, v in p.items()) for p in points]
    return {name: slice(i * s, (i + 1) * s) for i, name in enumerate(labels)}


# What a resumed run may change: its length (only longer) and its logging, evaluation and
# checkpoint cadence. Everything else is the run's own config.
RESUMABLE = (
    "algo.total_timesteps",
    "logger.num_chunks",
    "logger.progress",
    "logger.wandb.mode",
    "eval.every_chunks",
    "eval.episodes",
    "eval.gif_episodes",
    "checkpoint_every_chunks",
    "keep_checkpoints",
    "distributed.coordinator_address",  # each process of a resumed run says where it is
    "distributed.num_processes",
    "distributed.process_id",
    "distributed.auto",
)


def resume_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[Config, list[str]]:
    """A run's own config with ``overrides`` ("key=value", keys of ``RESUMABLE`` only) applied
    -> (config, a line per changed value)."""
    cfg = OmegaConf.structured(load_run_config(run_dir))
    pairs = [o.split("=", 1) for o in overrides]
    refused = [k for k, *_ in pairs if k not in RESUMABLE]
    if refused:
        raise ValueError(
            f"a resumed run keeps its config; these overrides cannot change on resume: "
            f"{', '.join(refused)} (allowed: {', '.join(RESUMABLE)})"
        )
    new = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    changes = []
    for key, _ in pairs:
        old, value = OmegaConf.select(cfg, key), OmegaConf.select(new, key)
        if key == "algo.total_timesteps" and value < old:
            raise ValueError(
                f"algo.total_timesteps can only be raised on resume (the run has {old})"
            )
        if value != old:
            changes.append(f"{key}: {old} -> {value}")
    if any(c.startswith("algo.total_timesteps") for c in changes):
        changes.append(
            "learning-rate and entropy schedules, and any method phase set as a fraction of "
            "training, now run over the longer run"
        )
    return to_config(new), changes


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no config.yaml in {run_dir}: is it a run directory?")
    return to_config(OmegaConf.load(path))
