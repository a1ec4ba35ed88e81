"""Observation ablations: agents that see only part of their observation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from envs.core import Array, MultiAgentEnv, TimeStep
from envs.wrappers.base import Wrapper


class ObservationMask(Wrapper):
    """Zeroes every observation value from index ``keep`` on, for the agents in ``agents``
    (all if None). HAMMER's ablations: partial observation (all agents keep their first 10
    values) and heterogeneity (one agent does). The global ``state`` is left as it is."""

    def __init__(self, env: MultiAgentEnv, keep: int, agents: Sequence[int] | None = None):
        super().__init__(env)
        n, dim = env.num_agents, env.obs_dim
        agents = list(range(n)) if agents is None else list(agents)
        if keep < 0 or any(not 0 <= i < n for i in agents):
            raise ValueError(
                f"observation mask: keep >= 0 and agents in [0, {n}), got {keep}, {agents}"
            )
        mask = np.ones((n, dim), bool)
        mask[agents, keep:] = False
        self.mask = mask  # [N, obs_dim]

    def _masked(self, ts: TimeStep) -> TimeStep:
        return ts.replace(obs=jnp.where(self.mask, ts.obs, 0.0))

    def reset(self, key: Array) -> tuple[Any, TimeStep]:
        state, ts = self.env.reset(key)
        return state, self._masked(ts)

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Any, TimeStep]:
        state, ts = self.env.step(key, state, actions)
        return state, self._masked(ts)
