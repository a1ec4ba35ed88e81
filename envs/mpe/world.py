"""Particle-world physics shared by the MPE scenarios, following mpe2's ``core.py``.

Entities are agents (first ``N``) then landmarks, held as stacked arrays. One ``step``:
decode actions into forces and messages, add soft contact forces between colliding
entities, integrate (semi-implicit: position with the old velocity, then damping, force
and the speed limit), then ask the scenario for observations, rewards and termination.
Scenarios subclass ``ParticleEnv`` and fill in the four ``_scenario`` hooks.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnasium import spaces

from envs.core import Array, MultiAgentEnv, TimeStep

MOVE_ACTIONS = 5  # no-op, -x, +x, -y, +y


@struct.dataclass
class MPEState:
    pos: Array  # [E, 2] positions, agents first then landmarks
    vel: Array  # [E, 2] velocities
    comm: Array  # [N, dim_c] last message of each agent (zeros for silent agents)
    goal: Array  # [N] int32 landmark index an agent's goal refers to (scenario-specific)
    step: Array  # [] int32 steps taken in this episode


class ParticleEnv(MultiAgentEnv):
    """Base class of the MPE scenarios: physics, action decoding, spaces and rendering.

    Per-entity properties are static numpy arrays fixed at construction; only positions,
    velocities, messages and goals live in the state.
    """

    dt = 0.1
    damping = 0.25
    contact_force = 1e2
    contact_margin = 1e-3
    camera_range = 1.5  # rendered square is [-1.5, 1.5]^2

    def __init__(
        self,
        agents: list[str],
        num_landmarks: int,
        size: np.ndarray,  # [E]
        movable: np.ndarray,  # [E] bool
        collide: np.ndarray,  # [E] bool
        silent: np.ndarray,  # [N] bool
        color: np.ndarray,  # [E, 3]
        dim_c: int,
        obs_sizes: list[int],  # [N] unpadded observation width per agent
        max_steps: int,
        continuous_actions: bool,
        accel: np.ndarray | None = None,  # [N], default 5 (mpe2's sensitivity)
        max_speed: np.ndarray | None = None,  # [E], default no limit
        mute: bool = False,  # words are spoken (actions) but never heard (observed as zeros)
    ):
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.agents = tuple(agents)
        n, e = len(agents), len(agents) + num_landmarks
        self.num_landmarks = num_landmarks
        self.size = np.asarray(size, np.float64)
        self.movable = np.asarray(movable, bool)
        self.collide = np.asarray(collide, bool)
        self.silent = np.asarray(silent, bool)
        self.color = np.asarray(color, np.float64)
        self.mass = np.ones(e, np.float64)
        self.accel = np.full(n, 5.0) if accel is None else np.asarray(accel, np.float64)
        self.max_speed = (
            np.full(e, np.inf) if max_speed is None else np.asarray(max_speed, np.float64)
        )
        self.dim_c = dim_c
        self.mute = mute
        self.max_steps = max_steps
        self.continuous_actions = continuous_actions
        self._obs_sizes = list(obs_sizes)
        self.state_dim = int(sum(obs_sizes))

        agent_movable = self.movable[:n]
        speaks = ~self.silent
        if continuous_actions:
            sizes = agent_movable * MOVE_ACTIONS + speaks * dim_c
            self._action_spaces = [spaces.Box(0.0, 1.0, (int(s),), np.float32) for s in sizes]
        else:
            sizes = np.where(agent_movable, MOVE_ACTIONS, 1) * np.where(speaks, dim_c, 1)
            self._action_spaces = [spaces.Discrete(int(s)) for s in sizes]
        self._obs_spaces = [
            spaces.Box(-np.inf, np.inf, (int(d),), np.float32) for d in self._obs_sizes
        ]
        # Static gather indices.
        self._colliders = np.flatnonzero(self.collide)  # [C]
        self._others = np.array([[j for j in range(n) if j != i] for i in range(n)]).reshape(
            n, n - 1
        )
        self._state_index = np.concatenate(
            [i * self.obs_dim + np.arange(d) for i, d in enumerate(self._obs_sizes)]
        )
        self._comm_index = np.where(agent_movable, MOVE_ACTIONS, 0)[:, None] + np.arange(dim_c)

    # --- spaces -----------------------------------------------------------------------

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[self.agent_index(agent)]

    def action_space(self, agent: str) -> spaces.Space:
        return self._action_spaces[self.agent_index(agent)]

    # --- scenario hooks -----------------------------------------------------------------

    def _scenario_reset(self, key: Array) -> tuple[Array, Array]:
        """Initial positions ``[E, 2]`` and goals ``[N]`` int32."""
        raise NotImplementedError

    def _scenario_obs(self, state: MPEState) -> Array:
        """Observations ``[N, obs_dim]`` (rows zero-padded past each agent's width)."""
        raise NotImplementedError

    def _scenario_reward(self, state: MPEState) -> Array:
        """Rewards ``[N]`` after the physics step."""
        raise NotImplementedError

    def _scenario_metrics(self, state: MPEState) -> dict[str, Array]:
        """Scalar task metrics for ``TimeStep.info``."""
        return {}

    def _scenario_terminal(self, state: MPEState) -> Array:
        return jnp.array(False)

    # --- reset / step -------------------------------------------------------------------

    def reset(self, key: Array) -> tuple[MPEState, TimeStep]:
        pos, goal = self._scenario_reset(key)
        e = pos.shape[0]
        state = MPEState(
            pos=pos,
            vel=jnp.zeros((e, 2)),
            comm=jnp.zeros((self.num_agents, self.dim_c)),
            goal=goal,
            step=jnp.array(0, jnp.int32),
        )
        return state, self._timestep(
            state, jnp.zeros(self.num_agents, jnp.float32), jnp.array(False)
        )

    def step(self, key: Array, state: MPEState, actions: Array) -> tuple[MPEState, TimeStep]:
        u, comm = self.decode_actions(actions)
        if self.mute:
            comm = jnp.zeros_like(comm)
        pos, vel = self._integrate(state.pos, state.vel, u)
        state = state.replace(pos=pos, vel=vel, comm=comm, step=state.step + 1)
        reward = self._scenario_reward(state).astype(jnp.float32)
        return state, self._timestep(state, reward, self._scenario_terminal(state))

    def _timestep(self, state: MPEState, reward: Array, terminated: Array) -> TimeStep:
        obs = self._scenario_obs(state).astype(jnp.float32)
        return TimeStep(
            obs=obs,
            state=obs.reshape(-1)[self._state_index],
            reward=reward,
            terminated=terminated,
            truncated=(state.step >= self.max_steps) & ~terminated,
            active=jnp.ones(self.num_agents, bool),
            action_mask=jnp.asarray(self.static_action_mask),
            info=self._scenario_metrics(state),
        )

    def decode_actions(self, actions: Array) -> tuple[Array, Array]:
        """Actions -> (force ``[N, 2]``, message ``[N, dim_c]``), as mpe2's ``_set_action``.

        Discrete: movable agents move by ``a % 5`` and speak ``a // 5``; immovable ones
        speak ``a``. Continuous (clipped to [0, 1] like mpe2's wrapper): force
        ``(a[2] - a[1], a[4] - a[3])``, message the next ``dim_c`` entries.
        """
        movable = jnp.asarray(self.movable[: self.num_agents])
        if self.continuous_actions:
            a = jnp.clip(actions.astype(float), 0.0, 1.0)  # [N, A]
            u = jnp.stack([a[:, 2] - a[:, 1], a[:, 4] - a[:, 3]], -1)  # every scenario has a mover
            comm = jnp.take_along_axis(a, jnp.asarray(self._comm_index), 1, mode="clip")
        else:
            move = jnp.where(movable, actions % MOVE_ACTIONS, 0)
            word = jnp.where(movable, actions // MOVE_ACTIONS, actions)
            u = jnp.stack([(move == 2) * 1.0 - (move == 1), (move == 4) * 1.0 - (move == 3)], -1)
            comm = jax.nn.one_hot(word, self.dim_c)
        u = jnp.where(movable[:, None], u * self.accel[:, None], 0.0)
        comm = jnp.where(self.silent[:, None], 0.0, comm)
        return u, comm

    def _integrate(self, pos: Array, vel: Array, u: Array) -> tuple[Array, Array]:
        force = jnp.zeros_like(pos).at[: self.num_agents].add(u) + self._contact_forces(pos)
        movable = jnp.asarray(self.movable)[:, None]
        new_pos = pos + vel * self.dt
        new_vel = vel * (1 - self.damping) + force / self.mass[:, None] * self.dt
        speed = jnp.sqrt(jnp.sum(new_vel**2, -1, keepdims=True))
        max_speed = self.max_speed[:, None]
        new_vel = jnp.where(speed > max_speed, new_vel / speed * max_speed, new_vel)
        return jnp.where(movable, new_pos, pos), jnp.where(movable, new_vel, vel)

    def _contact_forces(self, pos: Array) -> Array:
        """Soft contact force on every entity from all colliding pairs, ``[E, 2]``."""
        c = self._colliders
        if len(c) < 2:
            return jnp.zeros_like(pos)
        p = pos[c]  # [C, 2]
        delta = p[:, None] - p[None, :]  # [C, C, 2]
        off_diag = ~np.eye(len(c), dtype=bool)
        dist = jnp.sqrt(jnp.sum(delta**2, -1))
        dist = jnp.where(off_diag, dist, 1.0)
        dist_min = self.size[c][:, None] + self.size[c][None, :]
        k = self.contact_margin
        penetration = jnp.logaddexp(0.0, -(dist - dist_min) / k) * k
        pair_force = self.contact_force * delta / dist[..., None] * penetration[..., None]
        force = jnp.sum(jnp.where(off_diag[..., None], pair_force, 0.0), axis=1)  # [C, 2]
        return jnp.zeros_like(pos).at[c].set(force * self.movable[c][:, None])

    # --- helpers for scenarios --------------------------------------------------------------

    def _uniform_positions(self, key: Array, low: np.ndarray, high: np.ndarray) -> Array:
        """Entity positions drawn uniformly per entity from ``[low_e, high_e]^2``."""
        e = self.num_agents + self.num_landmarks
        return jax.random.uniform(key, (e, 2), minval=low[:, None], maxval=high[:, None])

    def _pad_obs(self, obs: Array) -> Array:
        return jnp.pad(obs, ((0, 0), (0, self.obs_dim - obs.shape[1])))

    def _is_collision(self, pos: Array, i: np.ndarray, j: np.ndarray) -> Array:
        """Whether entities ``i`` and ``j`` (broadcastable index arrays) overlap."""
        dist = jnp.sqrt(jnp.sum((pos[i] - pos[j]) ** 2, -1))
        return dist < self.size[i] + self.size[j]

    # --- rendering ------------------------------------------------------------------------

    def _entity_colors(self, state: MPEState) -> np.ndarray:
        """[E, 3] RGB in [0, 1] for rendering; scenarios may colour by goal."""
        return self.color

    def render(self, state: MPEState, resolution: int = 400) -> np.ndarray:
        pos = np.asarray(state.pos, np.float64)
        color = np.clip(self._entity_colors(state), 0.0, 1.0)
        cam = self.camera_range  # fixed, so frames of an episode share one scale
        scale = resolution / (2 * cam)
        yy, xx = np.mgrid[:resolution, :resolution]
        frame = np.full((resolution, resolution, 3), 255, np.uint8)
        order = list(range(self.num_agents, len(pos))) + list(range(self.num_agents))
        for e in order:  # landmarks below agents
            cx, cy = (pos[e, 0] + cam) * scale, (cam - pos[e, 1]) * scale
            r2 = (xx - cx) ** 2 + (yy - cy) ** 2
            radius = self.size[e] * scale
            frame[r2 <= radius**2] = (color[e] * 255).astype(np.uint8)
            frame[(r2 <= radius**2) & (r2 >= (radius - 1.5) ** 2)] = 0
        return frame
