"""A JAX environment seen as a ``pettingzoo.ParallelEnv`` (host side, one environment).

Actions are checked before they reach JAX: unknown or missing agents, out-of-range,
wrongly shaped, non-integer or non-finite actions raise ``ValueError`` naming the agent.
"""

from __future__ import annotations

from copy import deepcopy
from functools import partial
from typing import Any

import jax
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.core import MultiAgentEnv


# Jitted once per environment object (a static argument): views that share one environment
# object share its compiled reset and step.
@partial(jax.jit, static_argnums=0)
def _reset(env: MultiAgentEnv, key):
    return env.reset(key)


@partial(jax.jit, static_argnums=0)
def _step(env: MultiAgentEnv, key, state, actions):
    return env.step(key, state, actions)


class PettingZooEnv(ParallelEnv):
    metadata = {"render_modes": ["rgb_array", "human"], "is_parallelizable": True}

    def __init__(self, env: MultiAgentEnv, render_mode: str | None = None):
        """``render_mode``: ``rgb_array`` (``render()`` returns the frame) or ``human`` (it
        shows the frame in a matplotlib window)."""
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(
                f"render_mode must be None or one of {self.metadata['render_modes']}, "
                f"got {render_mode!r}"
            )
        self.env = env
        self.render_mode = render_mode
        self._window = None  # human rendering: (figure, image)
        self.metadata = {**self.metadata, "name": env.name, "render_fps": env.render_fps}
        self.possible_agents = list(env.agents)
        # Each view owns its spaces (PettingZoo seeds them per environment).
        self._spaces = {
            a: (deepcopy(env.observation_space(a)), deepcopy(env.action_space(a)))
            for a in env.agents
        }
        self.agents: list[str] = []
        self.state_space = spaces.Box(-np.inf, np.inf, (env.state_dim,), np.float32)
        self._key = jax.random.PRNGKey(np.random.SeedSequence().entropy % 2**32)
        self._state = None
        self._timestep = None

    def observation_space(self, agent: str) -> spaces.Space:
        return self._spaces[agent][0]

    def action_space(self, agent: str) -> spaces.Space:
        return self._spaces[agent][1]

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, key = jax.random.split(self._key)
        self._state, ts = _reset(self.env, key)
        self._timestep = jax.device_get(ts)
        self.agents = [
            a for a, on in zip(self.possible_agents, self._timestep.active, strict=True) if on
        ]
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if self._state is None:
            raise ValueError("call reset() before step()")
        if not self.agents:
            raise ValueError("the episode is over (no agents left): call reset()")
        stacked = self._stack_actions(actions)
        self._key, key = jax.random.split(self._key)
        self._state, ts = _step(self.env, key, self._state, stacked)
        ts = self._timestep = jax.device_get(ts)
        acted = self.agents
        obs = self._observations()
        rewards = {a: float(ts.reward[self.env.agent_index(a)]) for a in acted}
        ended = bool(ts.terminated) or bool(ts.truncated)
        active = dict(zip(self.possible_agents, ts.active, strict=True))
        # A whole-team end is a termination or a truncation; an agent dropping out terminates.
        terminations = {a: bool(ts.terminated) or (not ended and not active[a]) for a in acted}
        truncations = {a: bool(ts.truncated) for a in acted}
        info = {k: np.asarray(v).tolist() for k, v in ts.info.items()}
        self.agents = [a for a in acted if active[a] and not ended]
        return obs, rewards, terminations, truncations, {a: dict(info) for a in acted}

    def state(self) -> np.ndarray:
        if self._timestep is None:
            raise ValueError("call reset() before state()")
        return np.asarray(self._timestep.state, np.float32)

    def render(self) -> np.ndarray | None:
        if self.render_mode is None or self._state is None:
            return None
        frame = self.env.render(self._state)
        if self.render_mode == "rgb_array":
            return frame
        import matplotlib.pyplot as plt

        if self._window is None:
            figure, ax = plt.subplots()
            ax.set_axis_off()
            self._window = figure, ax.imshow(frame)
        self._window[1].set_data(frame)
        plt.pause(1 / self.metadata["render_fps"])  # draws; a no-op without a display
        return None

    def close(self) -> None:
        self._state = None
        if self._window is not None:
            import matplotlib.pyplot as plt

            plt.close(self._window[0])
            self._window = None

    def _observations(self) -> dict[str, np.ndarray]:
        obs = np.asarray(self._timestep.obs, np.float32)
        sizes = self.env.obs_sizes
        return {
            a: obs[i, : sizes[i]] for i, a in enumerate(self.possible_agents) if a in self.agents
        }

    def _stack_actions(self, actions: dict[str, Any]) -> np.ndarray:
        """Validated actions as the stacked array the JAX env takes."""
        if not isinstance(actions, dict):
            raise ValueError(
                f"actions must be a dict agent -> action, got {type(actions).__name__}"
            )
        unknown = sorted(set(actions) - set(self.agents))
        if unknown:
            raise ValueError(
                f"actions for unknown or inactive agent(s) {unknown}; agents are {self.agents}"
            )
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"missing actions for agent(s) {missing}")
        env = self.env
        if env.discrete:
            out = np.zeros(env.num_agents, np.int32)
        else:
            out = np.zeros((env.num_agents, env.action_dim), np.float32)
        for agent, action in actions.items():
            i = env.agent_index(agent)
            space = self.action_space(agent)
            if env.discrete:
                out[i] = _check_discrete(agent, action, space)
            else:
                out[i, : space.shape[0]] = _check_box(agent, action, space)
        return out


def _check_discrete(agent: str, action: Any, space: spaces.Discrete) -> int:
    a = np.asarray(action)
    if a.shape != () or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"action for agent {agent!r} must be one integer for {space}, got {action!r}"
        )
    if not space.start <= int(a) < space.start + space.n:
        raise ValueError(f"action {int(a)} for agent {agent!r} is outside {space}")
    return int(a) - int(space.start)


def _check_box(agent: str, action: Any, space: spaces.Box) -> np.ndarray:
    try:
        a = np.asarray(action, np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"action for agent {agent!r} is not numeric: {action!r}") from None
    if a.shape != space.shape:
        raise ValueError(f"action for agent {agent!r} has shape {a.shape}, expected {space.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action for agent {agent!r} is not finite: {a}")
    if np.any(a < space.low) or np.any(a > space.high):
        raise ValueError(f"action {a} for agent {agent!r} is outside [{space.low}, {space.high}]")
    return a


def to_pettingzoo(env: MultiAgentEnv, render_mode: str | None = None) -> PettingZooEnv:
    """A ``pettingzoo.ParallelEnv`` over one copy of a JAX environment."""
    return PettingZooEnv(env, render_mode)
