"""Policies by name: ``POLICIES``, ``register_policy``, ``make_policy``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from envs.core import AgentSpaces
from marl.comm import make_channel
from marl.config import Config, PolicyConfig
from marl.policies.aim import AIMConfig, AIMPolicy
from marl.policies.base import (
    Acted,
    ActionDist,
    ActorCritic,
    Context,
    Evaluated,
    Observation,
    Role,
    groups_by_module,
)
from marl.policies.commformer import CommFormerConfig, CommFormerPolicy
from marl.policies.hammer import HammerConfig, HammerPolicy
from marl.policies.mlp import MLPActorCritic, MLPConfig


@dataclass(frozen=True)
class PolicyEntry:
    """``config``: the policy's config dataclass (its ``policy`` schema). ``make(cfg, env,
    channel, num_updates)`` builds it; ``channel`` is the ``comm`` module, or ``None`` for a
    policy with communication of its own (it then refuses any ``comm`` but ``none``)."""

    config: type
    make: Callable[..., ActorCritic]
    uses_comm: bool = True


POLICIES: dict[str, PolicyEntry] = {
    "ippo": PolicyEntry(MLPConfig, MLPActorCritic),
    "mappo": PolicyEntry(MLPConfig, MLPActorCritic),
    "hammer": PolicyEntry(HammerConfig, HammerPolicy),
    "commformer": PolicyEntry(CommFormerConfig, CommFormerPolicy),
    "aim": PolicyEntry(AIMConfig, AIMPolicy, uses_comm=False),
}


def register_policy(name: str, config: type, make: Callable[..., ActorCritic], uses_comm=True):
    if name in POLICIES:
        raise ValueError(f"policy {name!r} is already registered")
    POLICIES[name] = PolicyEntry(config, make, uses_comm)


def make_policy(cfg: Config, env: AgentSpaces, num_updates: int) -> ActorCritic:
    """The configured policy for ``env``, told the run's length in updates."""
    if cfg.policy.name not in POLICIES:
        raise ValueError(
            f"unknown policy {cfg.policy.name!r}; policy options are {sorted(POLICIES)}"
        )
    entry = POLICIES[cfg.policy.name]
    if entry.uses_comm:
        return entry.make(cfg.policy, env, make_channel(cfg.comm, env), num_updates)
    if cfg.comm.name != "none":
        raise ValueError(f"policy {cfg.policy.name!r} communicates on its own: set comm=none")
    return entry.make(cfg.policy, env, None, num_updates)


__all__ = [
    "POLICIES",
    "Acted",
    "ActionDist",
    "ActorCritic",
    "Context",
    "Evaluated",
    "MLPConfig",
    "Observation",
    "PolicyConfig",
    "PolicyEntry",
    "Role",
    "groups_by_module",
    "make_policy",
    "register_policy",
]
