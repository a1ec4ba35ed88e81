"""Policies by name: ``make_policy(cfg, env)``."""

from __future__ import annotations

from collections.abc import Callable

from envs.core import AgentSpaces
from marl.config import PolicyConfig
from marl.policies.base import ActionDist, ActorCritic, Observation
from marl.policies.mlp import MLPActorCritic

POLICIES: dict[str, Callable[[PolicyConfig, AgentSpaces], ActorCritic]] = {
    "ippo": lambda cfg, env: MLPActorCritic(cfg, env, centralised=False),
    "mappo": lambda cfg, env: MLPActorCritic(cfg, env, centralised=True),
}


def make_policy(cfg: PolicyConfig, env: AgentSpaces) -> ActorCritic:
    if cfg.name not in POLICIES:
        raise ValueError(f"unknown policy {cfg.name!r}; policies are {sorted(POLICIES)}")
    return POLICIES[cfg.name](cfg, env)


__all__ = ["POLICIES", "ActionDist", "ActorCritic", "Observation", "make_policy"]
