"""The contextual Prisoner's Dilemma of "AI Mother Tongue" (Liu 2025): a one-step game of two
agents on a digit image.

Each round draws a label uniformly, then an image of that label; both agents see the image
(flattened pixels in [0, 1]) and the label (one-hot) and choose 0 = cooperate or 1 = defect.
Payoffs (A, B): CC (4, 4), plus 1 each on even labels; CD (-1, 5) and DC (5, -1), the
cooperator losing 1 more on odd labels; DD (0, 0). The best joint reward is 10 on even and 8
on odd labels: 9.0 on average. Every episode is one step (terminated). ``joint_reward``:
both agents receive ``rA + rB`` (the reference trains both on it).

Images: scikit-learn's 8 x 8 digits by default, or MNIST from idx files (``images_path``,
``labels_path``). Info: ``cooperation`` (both cooperated), ``joint_reward``, and the task
variables ``task/label`` and ``task/choice`` (each agent's own choice), per agent.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnasium import spaces

from envs.core import Array, MultiAgentEnv, SharedSpaces, TimeStep
from envs.games.images import load_digits, load_idx

COOPERATE, DEFECT = 0, 1
# PAYOFF[label parity (0 even, 1 odd), action A, action B] -> (reward A, reward B)
PAYOFF = np.array(
    [
        [[[5, 5], [-1, 5]], [[5, -1], [0, 0]]],  # even: CC gets +1 each
        [[[4, 4], [-2, 5]], [[5, -2], [0, 0]]],  # odd: the lone cooperator gets -1
    ],
    np.float32,
)


@struct.dataclass
class PDState:
    image: Array  # [] int32: index into the image set
    label: Array  # [] int32
    choice: Array  # [2] int32: the last choices (-1 before the first step)
    step: Array  # [] int32


class ContextualPD(SharedSpaces, MultiAgentEnv):
    name = "games/contextual_pd"

    def __init__(
        self,
        images_path: str | None = None,
        labels_path: str | None = None,
        joint_reward: bool = False,
    ):
        if (images_path is None) != (labels_path is None):
            raise ValueError("give both images_path and labels_path (MNIST idx files), or neither")
        images, labels = (
            load_digits() if images_path is None else load_idx(images_path, labels_path)
        )
        if set(np.unique(labels).tolist()) != set(range(10)):
            raise ValueError(f"the game needs images of all 10 digits, got {np.unique(labels)}")
        order = np.argsort(labels, kind="stable")  # images grouped by label
        self.images = jnp.asarray(images[order].reshape(len(images), -1))  # [M, H * W]
        self.labels = jnp.asarray(labels[order])
        counts = np.bincount(labels, minlength=10)
        self.first = jnp.asarray(np.concatenate([[0], np.cumsum(counts)[:-1]]), jnp.int32)
        self.counts = jnp.asarray(counts, jnp.int32)
        self.image_shape = images.shape[1:]
        self.joint_reward = joint_reward
        self.agents = ("agent_a", "agent_b")
        self.max_steps = 1
        width = self.images.shape[1] + 10
        self._obs_space = spaces.Box(0.0, 1.0, (width,), np.float32)
        self._action_space = spaces.Discrete(2)
        self.state_dim = width

    def reset(self, key: Array) -> tuple[PDState, TimeStep]:
        k_label, k_image = jax.random.split(key)
        label = jax.random.randint(k_label, (), 0, 10)
        image = self.first[label] + jax.random.randint(k_image, (), 0, self.counts[label])
        state = PDState(image, label, jnp.full(2, -1, jnp.int32), jnp.array(0, jnp.int32))
        return state, self._timestep(state, jnp.zeros(2), jnp.array(False))

    def step(self, key: Array, state: PDState, actions: Array) -> tuple[PDState, TimeStep]:
        actions = actions.astype(jnp.int32)
        reward = jnp.asarray(PAYOFF)[state.label % 2, actions[0], actions[1]]
        state = state.replace(choice=actions, step=state.step + 1)
        ts = self._timestep(state, reward, jnp.array(True))
        if self.joint_reward:  # both agents get rA + rB (the reference's training signal)
            ts = ts.replace(reward=jnp.full(2, reward.sum()))
        return state, ts

    def _timestep(self, state: PDState, reward: Array, terminated: Array) -> TimeStep:
        x = jnp.concatenate([self.images[state.image], jax.nn.one_hot(state.label, 10)])
        both = jnp.all(state.choice == COOPERATE)
        return TimeStep(
            obs=jnp.stack([x, x]),
            state=x,
            reward=reward.astype(jnp.float32),
            terminated=terminated,
            truncated=jnp.array(False),
            active=jnp.ones(2, bool),
            action_mask=jnp.ones((2, 2), bool),
            info={
                "cooperation": both.astype(jnp.float32),
                "joint_reward": reward.sum(),
                "task/label": jnp.full(2, state.label),
                "task/choice": state.choice,
            },
        )

    def render(self, state: PDState, scale: int = 16) -> np.ndarray:
        """The image in grey, with a bar per agent under it: green cooperate, red defect."""
        image = np.asarray(self.images[int(state.image)]).reshape(self.image_shape)
        grey = np.repeat(np.kron(image, np.ones((scale, scale)))[..., None] * 255, 3, -1)
        w = grey.shape[1]
        bars = np.full((scale, w, 3), 255.0)
        for i, c in enumerate(np.asarray(state.choice)):
            color = {COOPERATE: (60, 170, 60), DEFECT: (210, 60, 60)}.get(int(c), (200, 200, 200))
            bars[2:-2, i * w // 2 + 2 : (i + 1) * w // 2 - 2] = color
        return np.concatenate([grey, bars]).astype(np.uint8)
