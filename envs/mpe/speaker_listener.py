"""Speaker-listener (mpe2 ``simple_speaker_listener_v4``): communication is necessary.

An immovable speaker sees the colour of the goal landmark and says one of 3 words; a
silent listener sees the landmarks and the word and must move to the goal. Both receive
minus the listener's squared distance to the goal.
``mute``: the words are never heard (for comparing learned channels with no communication).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import Array
from envs.mpe.world import MPEState, ParticleEnv

LANDMARK_COLORS = np.array([[0.65, 0.15, 0.15], [0.15, 0.65, 0.15], [0.15, 0.15, 0.65]])


class SpeakerListener(ParticleEnv):
    name = "mpe/speaker_listener"

    def __init__(self, max_steps: int = 25, continuous_actions: bool = False, mute: bool = False):
        super().__init__(
            agents=["speaker_0", "listener_0"],
            num_landmarks=3,
            size=np.array([0.075, 0.075, 0.04, 0.04, 0.04]),
            movable=np.array([False, True, False, False, False]),
            collide=np.zeros(5, bool),
            silent=np.array([False, True]),
            color=np.r_[np.full((2, 3), 0.25), LANDMARK_COLORS],
            dim_c=3,
            obs_sizes=[3, 2 + 6 + 3],  # speaker: goal colour; listener: vel, landmarks, word
            max_steps=max_steps,
            continuous_actions=continuous_actions,
            mute=mute,
        )

    def _scenario_reset(self, key: Array) -> tuple[Array, Array]:
        k_goal, k_pos = jax.random.split(key)
        goal = jax.random.randint(k_goal, (), 0, 3)
        pos = jax.random.uniform(k_pos, (5, 2), minval=-1.0, maxval=1.0)
        return pos, jnp.stack([goal, goal]).astype(jnp.int32)

    def _goal_dist2(self, state: MPEState) -> Array:
        return jnp.sum((state.pos[1] - state.pos[2 + state.goal[0]]) ** 2)

    def _scenario_obs(self, state: MPEState) -> Array:
        speaker = jnp.asarray(LANDMARK_COLORS)[state.goal[0]]  # [3]
        listener = jnp.concatenate(
            [state.vel[1], (state.pos[2:] - state.pos[1]).reshape(-1), state.comm[0]]
        )
        return jnp.stack([self._pad_obs(speaker[None])[0], listener])

    def _scenario_reward(self, state: MPEState) -> Array:
        return jnp.full(2, -self._goal_dist2(state))

    def _scenario_metrics(self, state: MPEState) -> dict[str, Array]:
        # task/target: the goal landmark (what the speaker may talk about), per agent
        return {"goal_dist": jnp.sqrt(self._goal_dist2(state)), "task/target": state.goal}

    def _entity_colors(self, state: MPEState) -> np.ndarray:
        color = self.color.copy()
        color[1] = LANDMARK_COLORS[int(state.goal[0])] + 0.45  # listener wears its goal's colour
        return color
