"""Any PettingZoo ``ParallelEnv`` as a batched host-side environment.

``num_envs`` real environments are stepped in a Python loop and their dicts stacked into
the same ``TimeStep`` a ``vectorize``-d JAX environment returns (``[B, N, ...]`` numpy
arrays, auto-reset with ``final_obs``, episode statistics), so every method also trains on
them. Removed agents (e.g. a fallen walker) get zero observations and rewards and
``active = False``. Continuous actions are clipped to each agent's Box before stepping (a
Gaussian policy samples outside it; the log-probability stays that of the sample), as
PettingZoo's own fallback would, without its warning per action. The global state is the concatenation of the padded observations
(PettingZoo's ``state()`` is optional and fails for some envs once agents are removed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.core import AgentSpaces, TimeStep


class PettingZooVecEnv(AgentSpaces):
    def __init__(self, make_fn: Callable[[], ParallelEnv], num_envs: int, film_fps: float = 0):
        """``film_fps`` > 0: keep each environment's ``render()`` frames (its ``render_mode``
        must be ``rgb_array``) at about that rate, from a reset to the end of its first
        episode, in ``frames`` (every ``film_every``-th step, and the last)."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.envs = [make_fn() for _ in range(num_envs)]
        first = self.envs[0]
        self.render_fps = first.metadata.get("render_fps", 20)
        self.film_every = max(1, round(self.render_fps / film_fps)) if film_fps else 0
        self.frames: list[list[np.ndarray]] | None = [[] for _ in self.envs] if film_fps else None
        self._filming = np.zeros(num_envs, bool)
        self.name = first.metadata.get("name", type(first.unwrapped).__name__)
        self.agents = tuple(first.possible_agents)
        self._obs_spaces = {a: first.observation_space(a) for a in self.agents}
        self._act_spaces = {a: first.action_space(a) for a in self.agents}
        for agent, space in self._obs_spaces.items():
            if not isinstance(space, spaces.Box):
                raise TypeError(
                    f"agent {agent!r}: only Box observations are supported, got {space}"
                )
        self.num_envs = num_envs
        self.state_dim = self.num_agents * self.obs_dim
        b, n = num_envs, self.num_agents
        self._obs = np.zeros((b, n, self.obs_dim), np.float32)
        self._active = np.zeros((b, n), bool)
        self._return = np.zeros((b, n), np.float32)
        self._length = np.zeros(b, np.int32)

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[agent]

    def reset(self, seed: int | None = None) -> TimeStep:
        for i in range(self.num_envs):
            self._reset_one(i, None if seed is None else seed + i)
        if self.frames is not None:
            self.frames = [[env.render()] for env in self.envs]
            self._filming[:] = True
        zeros = np.zeros((self.num_envs, self.num_agents), np.float32)
        done = np.zeros(self.num_envs, bool)
        return self._timestep(zeros, done, done, self._obs.copy(), zeros, self._length.copy())

    def step(self, actions: np.ndarray) -> TimeStep:
        """``actions``: ``[B, N]`` ints (discrete) or ``[B, N, action_dim]`` floats."""
        actions = self._check_actions(actions)
        b, n = self.num_envs, self.num_agents
        reward = np.zeros((b, n), np.float32)
        terminated, truncated = np.zeros(b, bool), np.zeros(b, bool)
        final_obs = np.zeros_like(self._obs)
        ep_return, ep_length = np.zeros((b, n), np.float32), np.zeros(b, np.int32)
        for i, env in enumerate(self.envs):
            acts = {
                a: self._decode(actions[i, j], j)
                for j, a in enumerate(self.agents)
                if a in env.agents
            }
            obs, rew, _, trunc, _ = env.step(acts)
            reward[i] = [rew.get(a, 0.0) for a in self.agents]
            final_obs[i] = self._pad(obs)  # every agent that acted, including those now gone
            self._set_obs(i, obs, env.agents)
            self._return[i] += reward[i]
            self._length[i] += 1
            ep_return[i], ep_length[i] = self._return[i], self._length[i]
            if self.frames is not None and self._filming[i]:
                if self._length[i] % self.film_every == 0 or not env.agents:
                    self.frames[i].append(env.render())
                self._filming[i] = bool(env.agents)
            if not env.agents:  # the episode is over for everyone
                truncated[i] = any(trunc.values())
                terminated[i] = not truncated[i]
                self._reset_one(i, None)
        return self._timestep(reward, terminated, truncated, final_obs, ep_return, ep_length)

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # --- internals -----------------------------------------------------------------------

    def _reset_one(self, i: int, seed: int | None) -> None:
        obs, _ = self.envs[i].reset(seed=seed)
        self._set_obs(i, obs, self.envs[i].agents)
        self._return[i] = 0.0
        self._length[i] = 0

    def _pad(self, obs: dict) -> np.ndarray:
        """[N, obs_dim] stacked, zero-padded observations (zeros for absent agents)."""
        out = np.zeros((self.num_agents, self.obs_dim), np.float32)
        for j, agent in enumerate(self.agents):
            if agent in obs:
                out[j, : self.obs_sizes[j]] = np.ravel(obs[agent])
        return out

    def _set_obs(self, i: int, obs: dict, live: list[str]) -> None:
        self._active[i] = [a in live for a in self.agents]
        self._obs[i] = self._pad(obs) * self._active[i][:, None]

    def _decode(self, action: np.ndarray, j: int):
        if self.discrete:
            return int(action)
        space = self._act_spaces[self.agents[j]]
        return np.clip(action[: self.action_sizes[j]], space.low, space.high)

    def _check_actions(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions)
        b, n = self.num_envs, self.num_agents
        expected = (b, n) if self.discrete else (b, n, self.action_dim)
        if actions.shape != expected:
            raise ValueError(f"actions have shape {actions.shape}, expected {expected}")
        if self.discrete:
            if not np.issubdtype(actions.dtype, np.integer):
                raise ValueError(f"discrete actions must be integers, got dtype {actions.dtype}")
            bad = (actions < 0) | (actions >= self.action_sizes)
        else:
            bad = ~np.isfinite(actions).all(-1)
        bad &= self._active
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"invalid action {actions[i, j]} for agent {self.agents[j]!r} in env {i}"
            )
        return actions.astype(np.int32 if self.discrete else np.float32)

    def _timestep(self, reward, terminated, truncated, final_obs, ep_return, ep_length) -> TimeStep:
        b = self.num_envs
        return TimeStep(
            obs=self._obs.copy(),
            state=self._obs.reshape(b, -1).copy(),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            active=self._active.copy(),
            action_mask=np.broadcast_to(
                self.static_action_mask, (b, *self.static_action_mask.shape)
            ),
            info={
                "final_obs": final_obs,
                "final_state": final_obs.reshape(b, -1),
                "episode_return": ep_return,
                "episode_length": ep_length,
            },
        )


def from_pettingzoo(
    make_fn: Callable[[], ParallelEnv], num_envs: int, film_fps: float = 0
) -> PettingZooVecEnv:
    """``num_envs`` copies of ``make_fn()`` as one batched host environment (``film_fps``:
    keep frames of each one's first episode at about that rate)."""
    return PettingZooVecEnv(make_fn, num_envs, film_fps)
