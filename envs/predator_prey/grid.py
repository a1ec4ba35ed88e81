"""Grid Predator-Prey (PP) and Predator-Capture-Prey (PCP), as IC3Net and CommFormer use them.

A ``dim x dim`` grid holds one fixed prey and the team on distinct random cells. Each agent
sees the ``(2 vision + 1)^2`` window around it; a cell is a vector of ``dim^2 + 4`` values:
the one-hot of the cell's own index (so the window says where the agent is), then four
class channels: capture agents, OUTSIDE (padding beyond the border), prey and predators
(counts). Actions: 0 up, 1 right, 2 down, 3 left, 4 stay (and 5 capture in PCP); a move
off the grid does nothing.

Rewards ("mixed" mode): -0.05 per step for every agent not on the prey, 0 on it; an agent
that reaches the prey stays there for the rest of the episode. PP ends (terminated) when
every predator has reached the prey. In PCP (``num_capture > 0``) the last ``num_capture``
agents are blind capture agents (their class channels read -1) that must reach the prey and
then take the capture action; they earn -0.05 every step until they have captured, and the
episode ends when everyone has reached the prey and every capture agent has captured.

The reference environments have no time limit in training (episodes end only by capture)
and evaluate over 20 steps; here ``max_steps`` truncates (20 by default: the evaluation
length, so the episode length is the "steps to capture" metric, 20 when not captured).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnasium import spaces

from envs.core import Array, MultiAgentEnv, SharedSpaces, TimeStep

STEP_PENALTY = -0.05
CAPTURE = 5  # the capture action of PCP
MOVES = np.array(
    [[-1, 0], [0, 1], [1, 0], [0, -1], [0, 0], [0, 0]]
)  # up right down left stay capture


@struct.dataclass
class GridState:
    pos: Array  # [N, 2] int32 (row, column) of every agent
    prey: Array  # [2] int32
    reached: Array  # [N] bool: on the prey (and frozen there)
    captured: Array  # [N] bool: a capture agent that has captured
    step: Array  # [] int32


class PredatorPrey(SharedSpaces, MultiAgentEnv):
    name = "predator_prey/pp"

    def __init__(
        self,
        num_predators: int = 3,
        num_capture: int = 0,
        dim: int = 5,
        vision: int = 1,
        max_steps: int = 20,
    ):
        n = num_predators + num_capture
        if num_predators < 0 or num_capture < 0 or n < 1:
            raise ValueError(
                f"num_predators and num_capture must be >= 0 with at least one agent, "
                f"got {num_predators} and {num_capture}"
            )
        if dim < 1 or vision < 0 or max_steps < 1:
            raise ValueError(
                f"dim >= 1, vision >= 0 and max_steps >= 1 are needed, got {dim}, {vision}, "
                f"{max_steps}"
            )
        if n + 1 > dim * dim:
            raise ValueError(f"{n} agents and the prey need {n + 1} cells; the grid has {dim**2}")
        self.dim, self.vision, self.max_steps = dim, vision, max_steps
        self.num_capture = num_capture
        self.agents = tuple(
            [f"predator_{i}" for i in range(num_predators)]
            + [f"capture_{i}" for i in range(num_capture)]
        )
        self.is_capture = np.arange(n) >= num_predators  # [N]
        base = dim * dim
        self.capture_class, self.outside_class = base, base + 1
        self.prey_class, self.predator_class = base + 2, base + 3
        self.cell_dim, self.window = base + 4, 2 * vision + 1
        width = self.window**2 * self.cell_dim
        self._obs_space = spaces.Box(-1.0, float(n), (width,), np.float32)
        self._action_space = spaces.Discrete(6 if num_capture else 5)
        self.state_dim = n * width
        # The empty padded grid: each inner cell's index one-hot, OUTSIDE around it.
        index = np.pad(np.arange(base).reshape(dim, dim), vision, constant_values=base + 1)
        self._empty = np.eye(self.cell_dim, dtype=np.float32)[index]  # [D+2v, D+2v, C]
        if num_capture:
            self.name = "predator_prey/pcp"

    def reset(self, key: Array) -> tuple[GridState, TimeStep]:
        n = self.num_agents
        cells = jax.random.choice(key, self.dim * self.dim, (n + 1,), replace=False)
        pos = jnp.stack([cells // self.dim, cells % self.dim], -1).astype(jnp.int32)
        false = jnp.zeros(n, bool)
        state = GridState(pos[:n], pos[n], false, false, jnp.array(0, jnp.int32))
        return state, self._timestep(state, jnp.zeros(n, jnp.float32), jnp.array(False))

    def step(self, key: Array, state: GridState, actions: Array) -> tuple[GridState, TimeStep]:
        moved = jnp.clip(state.pos + jnp.asarray(MOVES)[actions], 0, self.dim - 1)
        pos = jnp.where(state.reached[:, None], state.pos, moved)  # [N, 2]
        on_prey = jnp.all(pos == state.prey, -1)  # [N]
        capture = jnp.asarray(self.is_capture)
        captured = state.captured | (capture & (actions == CAPTURE) & on_prey)
        reward = jnp.where(on_prey & ~(capture & ~captured), 0.0, STEP_PENALTY)
        reached = state.reached | on_prey
        terminated = jnp.all(reached) & jnp.all(captured | ~capture)
        state = state.replace(pos=pos, reached=reached, captured=captured, step=state.step + 1)
        return state, self._timestep(state, reward.astype(jnp.float32), terminated)

    def _obs(self, state: GridState) -> Array:
        """[N, window^2 * cell_dim]: every agent's window of the grid."""
        v, cap = self.vision, jnp.asarray(self.is_capture)
        grid = jnp.asarray(self._empty)
        rows, cols = state.pos[:, 0] + v, state.pos[:, 1] + v
        grid = grid.at[rows, cols, jnp.where(cap, self.capture_class, self.predator_class)].add(1.0)
        grid = grid.at[state.prey[0] + v, state.prey[1] + v, self.prey_class].add(1.0)
        size = (self.window, self.window, self.cell_dim)
        windows = jax.vmap(lambda p: jax.lax.dynamic_slice(grid, (p[0], p[1], 0), size))(state.pos)
        blind = cap[:, None, None, None] & (jnp.arange(self.cell_dim) >= self.capture_class)
        return jnp.where(blind, -1.0, windows).reshape(self.num_agents, -1)

    def _timestep(self, state: GridState, reward: Array, terminated: Array) -> TimeStep:
        obs = self._obs(state)
        return TimeStep(
            obs=obs,
            state=obs.reshape(-1),
            reward=reward,
            terminated=terminated,
            truncated=(state.step >= self.max_steps) & ~terminated,
            active=jnp.ones(self.num_agents, bool),
            action_mask=jnp.ones((self.num_agents, self.action_dim), bool),
            info={"success": terminated.astype(jnp.float32), "reached": state.reached.mean()},
        )

    def render(self, state: GridState, cell: int = 64) -> np.ndarray:
        """The grid: the prey red (dark once captured), predators blue, capture agents green,
        one quarter-cell marker per agent."""
        frame = np.full((self.dim * cell, self.dim * cell, 3), 255, np.uint8)
        frame[::cell], frame[:, ::cell] = 200, 200
        r, c = np.asarray(state.prey)
        frame[r * cell + 1 : (r + 1) * cell, c * cell + 1 : (c + 1) * cell] = (
            (120, 0, 0) if np.asarray(state.captured).any() else (230, 80, 80)
        )
        q = cell // 4
        for i, (r, c) in enumerate(np.asarray(state.pos)):
            y, x = r * cell + q * (i // 2 % 2) + q, c * cell + q * (i % 2) + q // 2
            frame[y : y + q, x : x + q] = (40, 160, 60) if self.is_capture[i] else (40, 70, 200)
        return frame
