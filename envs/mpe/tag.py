"""Predator-prey (mpe2 ``simple_tag_v3``): slower adversaries chase faster good agents.

Heterogeneous agents: adversaries also see the good agents' velocities, so good agents'
observations are zero-padded to the adversaries' width. Adversaries share +10 per
(adversary, good agent) contact; a good agent gets -10 per adversary touching it and a
penalty for leaving the unit square. Two immovable obstacles collide with everyone.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from envs.core import Array
from envs.mpe.world import MPEState, ParticleEnv


class Tag(ParticleEnv):
    name = "mpe/tag"

    def __init__(
        self,
        num_good: int = 1,
        num_adversaries: int = 3,
        num_obstacles: int = 2,
        max_steps: int = 25,
        continuous_actions: bool = False,
        terminate_on_success: bool = False,
    ):
        if num_good < 1 or num_adversaries < 1 or num_obstacles < 0:
            raise ValueError(
                "need num_good >= 1, num_adversaries >= 1, num_obstacles >= 0; got "
                f"{num_good}, {num_adversaries}, {num_obstacles}"
            )
        n, g, a = num_good + num_adversaries, num_good, num_adversaries
        self.num_good, self.num_adversaries = g, a
        self.terminate_on_success = terminate_on_success
        self.adversary = np.arange(n) < a
        self.teams = {"adversary": np.flatnonzero(self.adversary), "good": np.arange(a, n)}
        base = 2 + 2 + 2 * num_obstacles + 2 * (n - 1)  # vel, pos, obstacles, other agents
        super().__init__(
            agents=[f"adversary_{i}" for i in range(a)] + [f"agent_{i}" for i in range(g)],
            num_landmarks=num_obstacles,
            size=np.r_[np.full(a, 0.075), np.full(g, 0.05), np.full(num_obstacles, 0.2)],
            movable=np.r_[np.ones(n, bool), np.zeros(num_obstacles, bool)],
            collide=np.ones(n + num_obstacles, bool),
            silent=np.ones(n, bool),
            color=np.r_[
                np.tile([0.85, 0.35, 0.35], (a, 1)),
                np.tile([0.35, 0.85, 0.35], (g, 1)),
                np.tile([0.25, 0.25, 0.25], (num_obstacles, 1)),
            ],
            dim_c=2,
            # plus the velocities of the other good agents
            obs_sizes=[base + 2 * g] * a + [base + 2 * (g - 1)] * g,
            max_steps=max_steps,
            continuous_actions=continuous_actions,
            accel=np.r_[np.full(a, 3.0), np.full(g, 4.0)],
            max_speed=np.r_[np.full(a, 1.0), np.full(g, 1.3), np.full(num_obstacles, np.inf)],
        )
        # [N, G] the good agents whose velocity each agent sees (padded with a masked slot).
        good = np.flatnonzero(~self.adversary)
        seen = [[j for j in good if j != i] for i in range(n)]
        self._seen_good = np.array([s + [0] * (g - len(s)) for s in seen])
        self._seen_mask = np.array([[1.0] * len(s) + [0.0] * (g - len(s)) for s in seen])

    def _scenario_reset(self, key: Array) -> tuple[Array, Array]:
        n = self.num_agents
        bound = np.r_[np.full(n, 1.0), np.full(self.num_landmarks, 0.9)]
        return self._uniform_positions(key, -bound, bound), jnp.zeros(n, jnp.int32)

    def _scenario_obs(self, state: MPEState) -> Array:
        n = self.num_agents
        pos, vel = state.pos[:n], state.vel[:n]
        obstacles = (state.pos[n:][None] - pos[:, None]).reshape(n, -1)
        others = (pos[self._others] - pos[:, None]).reshape(n, -1)
        good_vel = (vel[self._seen_good] * self._seen_mask[..., None]).reshape(n, -1)
        return jnp.concatenate([vel, pos, obstacles, others, good_vel], -1)

    def _contacts(self, state: MPEState) -> Array:
        """[A, G] whether adversary a touches good agent g."""
        adv, good = np.flatnonzero(self.adversary), np.flatnonzero(~self.adversary)
        return self._is_collision(state.pos, adv[:, None], good[None, :])

    def _scenario_reward(self, state: MPEState) -> Array:
        hits = self._contacts(state)
        adv_reward = 10.0 * jnp.sum(hits)
        x = jnp.abs(state.pos[self.num_adversaries : self.num_agents])  # [G, 2]
        out = jnp.where(
            x < 0.9, 0.0, jnp.where(x < 1.0, (x - 0.9) * 10, jnp.minimum(jnp.exp(2 * x - 2), 10.0))
        )
        good_reward = -10.0 * jnp.sum(hits, 0) - out.sum(-1)
        return jnp.concatenate([jnp.full(self.num_adversaries, adv_reward), good_reward])

    def _scenario_terminal(self, state: MPEState) -> Array:
        if not self.terminate_on_success:
            return jnp.array(False)
        return jnp.all(jnp.any(self._contacts(state), 0))

    def _scenario_metrics(self, state: MPEState) -> dict[str, Array]:
        return {"captures": jnp.sum(self._contacts(state)).astype(jnp.float32)}
