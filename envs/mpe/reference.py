"""Reference game (mpe2 ``simple_reference_v3``): two agents that must talk to each other.

Each agent knows the goal landmark of the *other* agent and says one of 10 words while
moving; agent i is rewarded by minus the distance of the other agent to i's goal landmark,
mixed with the team mean by ``local_ratio``.
``mute``: the words are never heard (for comparing learned channels with no communication).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Array
from envs.mpe.world import MPEState, ParticleEnv

LANDMARK_COLORS = np.array([[0.75, 0.25, 0.25], [0.25, 0.75, 0.25], [0.25, 0.25, 0.75]])


class Reference(ParticleEnv):
    name = "mpe/reference"

    def __init__(
        self,
        local_ratio: float = 0.5,
        max_steps: int = 25,
        continuous_actions: bool = False,
        mute: bool = False,
    ):
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio must be in [0, 1], got {local_ratio}")
        self.local_ratio = local_ratio
        super().__init__(
            agents=["agent_0", "agent_1"],
            num_landmarks=3,
            size=np.full(5, 0.05),
            movable=np.array([True, True, False, False, False]),
            collide=np.zeros(5, bool),
            silent=np.zeros(2, bool),
            color=np.r_[np.full((2, 3), 0.25), LANDMARK_COLORS],
            dim_c=10,
            obs_sizes=[2 + 6 + 3 + 10] * 2,  # vel, landmarks, goal colour, other's word
            max_steps=max_steps,
            continuous_actions=continuous_actions,
            mute=mute,
        )

    def _scenario_reset(self, key: Array) -> tuple[Array, Array]:
        k_goal, k_pos = jax.random.split(key)
        goal = jax.random.randint(k_goal, (2,), 0, 3)
        pos = jax.random.uniform(k_pos, (5, 2), minval=-1.0, maxval=1.0)
        return pos, goal.astype(jnp.int32)

    def _goal_dists(self, state: MPEState) -> Array:
        """[2] distance of the other agent to agent i's goal landmark."""
        other = state.pos[jnp.array([1, 0])]
        return jnp.sqrt(jnp.sum((other - state.pos[2 + state.goal]) ** 2, -1))

    def _scenario_obs(self, state: MPEState) -> Array:
        pos = state.pos[:2]
        landmarks = (state.pos[None, 2:] - pos[:, None]).reshape(2, -1)
        goal_color = jnp.asarray(LANDMARK_COLORS)[state.goal]
        return jnp.concatenate([state.vel[:2], landmarks, goal_color, state.comm[::-1]], -1)

    def _scenario_reward(self, state: MPEState) -> Array:
        local = -self._goal_dists(state)
        return (1 - self.local_ratio) * local.mean() + self.local_ratio * local

    def _scenario_metrics(self, state: MPEState) -> dict[str, Array]:
        # task/target: per agent, the goal landmark it knows (and the other agent needs)
        return {"goal_dist": self._goal_dists(state).mean(), "task/target": state.goal}

    def _entity_colors(self, state: MPEState) -> np.ndarray:
        color = self.color.copy()
        color[[1, 0]] = LANDMARK_COLORS[np.asarray(state.goal)]  # i's goal colours the other
        return color
