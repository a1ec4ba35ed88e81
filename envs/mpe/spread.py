"""Cooperative navigation (mpe2 ``simple_spread_v3``): N agents cover N landmarks.

Reward: ``(1 - local_ratio) * global + local_ratio * local`` where the global part is minus
the sum over landmarks of the distance to the closest agent and the local part is -1 per
other agent an agent overlaps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Array
from envs.mpe.world import MPEState, ParticleEnv

CAPTURE_RADIUS = 0.1  # an agent this close "occupies" a landmark (mpe2's benchmark data)


class Spread(ParticleEnv):
    name = "mpe/spread"

    def __init__(
        self,
        num_agents: int = 3,
        local_ratio: float = 0.5,
        max_steps: int = 25,
        continuous_actions: bool = False,
        terminate_on_success: bool = False,
    ):
        if num_agents < 2:
            raise ValueError(f"num_agents must be >= 2, got {num_agents}")
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio must be in [0, 1], got {local_ratio}")
        n = num_agents
        self.local_ratio = local_ratio
        self.terminate_on_success = terminate_on_success
        super().__init__(
            agents=[f"agent_{i}" for i in range(n)],
            num_landmarks=n,
            size=np.r_[np.full(n, 0.15), np.full(n, 0.05)],
            movable=np.r_[np.ones(n, bool), np.zeros(n, bool)],
            collide=np.r_[np.ones(n, bool), np.zeros(n, bool)],
            silent=np.ones(n, bool),
            color=np.r_[np.tile([0.35, 0.35, 0.85], (n, 1)), np.tile([0.25, 0.25, 0.25], (n, 1))],
            dim_c=2,
            # vel, pos, landmarks, other agents, other agents' (silent) messages
            obs_sizes=[2 + 2 + 2 * n + 2 * (n - 1) + 2 * (n - 1)] * n,
            max_steps=max_steps,
            continuous_actions=continuous_actions,
        )

    def _scenario_reset(self, key: Array) -> tuple[Array, Array]:
        e = 2 * self.num_agents
        pos = jax.random.uniform(key, (e, 2), minval=-1.0, maxval=1.0)
        return pos, jnp.zeros(self.num_agents, jnp.int32)

    def _scenario_obs(self, state: MPEState) -> Array:
        n = self.num_agents
        pos, vel = state.pos[:n], state.vel[:n]
        landmarks = state.pos[n:][None] - pos[:, None]  # [N, L, 2]
        others = pos[self._others] - pos[:, None]  # [N, N-1, 2]
        comm = state.comm[self._others]  # [N, N-1, dim_c]
        return jnp.concatenate(
            [vel, pos, landmarks.reshape(n, -1), others.reshape(n, -1), comm.reshape(n, -1)], -1
        )

    def _landmark_dists(self, state: MPEState) -> Array:
        """[L] distance from each landmark to its closest agent."""
        n = self.num_agents
        d = jnp.sqrt(jnp.sum((state.pos[:n][:, None] - state.pos[n:][None]) ** 2, -1))  # [N, L]
        return d.min(0)

    def _collisions(self, state: MPEState) -> Array:
        """[N] number of other agents each agent overlaps."""
        n = self.num_agents
        hit = self._is_collision(state.pos, np.arange(n)[:, None], self._others)  # [N, N-1]
        return hit.sum(-1)

    def _scenario_reward(self, state: MPEState) -> Array:
        glob = -jnp.sum(self._landmark_dists(state))
        local = -self._collisions(state).astype(jnp.float32)
        return (1 - self.local_ratio) * glob + self.local_ratio * local

    def _scenario_terminal(self, state: MPEState) -> Array:
        if not self.terminate_on_success:
            return jnp.array(False)
        return jnp.all(self._landmark_dists(state) < CAPTURE_RADIUS)

    def _scenario_metrics(self, state: MPEState) -> dict[str, Array]:
        dists = self._landmark_dists(state)
        return {
            "landmark_dist": dists.sum(),
            "occupied_landmarks": jnp.sum(dists < CAPTURE_RADIUS).astype(jnp.float32),
            "collisions": self._collisions(state).sum().astype(jnp.float32) / 2,
        }
