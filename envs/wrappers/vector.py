"""Batching: ``num_envs`` copies of an environment stepped together under ``vmap``."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Array, MultiAgentEnv, TimeStep
from envs.wrappers.base import Wrapper
from envs.wrappers.episodes import AutoReset, EpisodeStats


class VecEnv(Wrapper):
    """Leading batch axis ``[B, ...]`` on states, timesteps and actions. ``same_reset``: all
    copies reset from one key (the same initial state)."""

    def __init__(self, env: MultiAgentEnv, num_envs: int, same_reset: bool = False):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        super().__init__(env)
        self.num_envs, self.same_reset = num_envs, same_reset

    def reset(self, key: Array) -> tuple[Any, TimeStep]:
        if self.same_reset:
            key = jnp.broadcast_to(key, (self.num_envs, *key.shape))
        else:
            key = jax.random.split(key, self.num_envs)
        return jax.vmap(self.env.reset)(key)

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Any, TimeStep]:
        return jax.vmap(self.env.step)(jax.random.split(key, self.num_envs), state, actions)

    def render(self, state: Any, index: int = 0) -> np.ndarray:
        return self.env.render(jax.tree.map(lambda x: x[index], state))


def vectorize(env: MultiAgentEnv, num_envs: int, fixed_start: bool = False) -> VecEnv:
    """The training stack: batched, episode statistics, auto-reset. ``fixed_start``: every
    episode of every copy starts from the same initial state (one per key)."""
    return VecEnv(EpisodeStats(AutoReset(env, fixed_start)), num_envs, fixed_start)
