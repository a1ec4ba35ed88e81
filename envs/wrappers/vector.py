"""Batching: ``num_envs`` copies of an environment stepped together under ``vmap``."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from envs.core import Array, MultiAgentEnv, TimeStep
from envs.wrappers.base import Wrapper
from envs.wrappers.episodes import AutoReset, EpisodeStats


class VecEnv(Wrapper):
    """Leading batch axis ``[B, ...]`` on states, timesteps and actions."""

    def __init__(self, env: MultiAgentEnv, num_envs: int):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        super().__init__(env)
        self.num_envs = num_envs

    def reset(self, key: Array) -> tuple[Any, TimeStep]:
        return jax.vmap(self.env.reset)(jax.random.split(key, self.num_envs))

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Any, TimeStep]:
        return jax.vmap(self.env.step)(jax.random.split(key, self.num_envs), state, actions)

    def render(self, state: Any, index: int = 0) -> np.ndarray:
        return self.env.render(jax.tree.map(lambda x: x[index], state))


def vectorize(env: MultiAgentEnv, num_envs: int) -> VecEnv:
    """The training stack: batched, episode statistics, auto-reset."""
    return VecEnv(EpisodeStats(AutoReset(env)), num_envs)
