"""Typed configuration: the schema Hydra validates ``configs/`` and overrides against.

A typo in a key or a value of the wrong type fails at start-up with a message naming the
key (OmegaConf structured configs); names of environments and policies are checked
against their registries, which list what exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

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


@dataclass
class PolicyConfig:
    name: str = "mappo"  # see marl.policies.POLICIES
    actor_hidden: list[int] = field(default_factory=lambda: [64, 64])
    critic_hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: Activation = Activation.tanh
    share_parameters: bool = True  # one network for all agents
    agent_id: bool = True  # append a one-hot agent id to every agent's input
    recurrent: bool = False  # GRU after the MLP torso
    gru_size: int = 64
    log_std_init: float = 0.0  # continuous actions: state-independent log-std


@dataclass
class AlgoConfig:
    total_timesteps: int = 2_000_000  # env-steps per seed
    num_steps: int = 128  # rollout length per update
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2.5e-4
    anneal_lr: bool = True  # linear decay to 0 over training
    adam_eps: float = 1e-5
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    clip_value: bool = True
    vf_coef: float = 0.5
    ent_coef: float = 0.01
    normalize_advantages: bool = True
    normalize_values: bool = False  # critic learns normalised returns (running mean/std)
    normalize_obs: bool = False  # running mean/std of observations
    # Per parameter group learning rates (groups are declared by the policy).
    group_lr: dict[str, float] = field(default_factory=dict)


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
class Config:
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0
    num_seeds: int = 1  # vmapped in one program
    run_dir: str = "runs/default"
    resume: str | None = None  # a run directory to continue
    checkpoint_every_chunks: int = 1
    keep_checkpoints: int = 3


def register_configs() -> None:
    """The schema for Hydra, and ``${either:a,b}`` (``a`` unless null) for the run directory."""
    ConfigStore.instance().store(name="schema", node=Config)
    if not OmegaConf.has_resolver("either"):
        OmegaConf.register_new_resolver("either", lambda a, b: b if a is None else a)


def to_config(cfg: DictConfig | dict) -> Config:
    """Validate a plain or Hydra config against the schema and return the typed object.

    The config is merged as plain data, so keys that Hydra let in (``+algo.lrr=1``) are
    rejected here too, with the key's full name.
    """
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    data.pop("hydra", None)
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), data))


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no config.yaml in {run_dir}: is it a run directory?")
    return to_config(OmegaConf.load(path))
