"""The multi-agent environment interface: pure functions over stacked ``[N, ...]`` arrays.

An environment is a set of pure functions ``reset(key)`` and ``step(key, state, actions)``
that can be ``jit``-ed and ``vmap``-ed. Observations, rewards and actions are stacked over
the agent axis (the natural shape for communication methods that attend over agents);
heterogeneous agents are zero-padded to a common width and each agent's own, unpadded
``gymnasium`` space says how much of its row is real.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import jax
import numpy as np
from flax import struct
from gymnasium import spaces

Array = jax.Array


@struct.dataclass
class TimeStep:
    """What an agent team sees after ``reset`` or ``step``.

    ``terminated`` (the task ended: do not bootstrap) and ``truncated`` (time limit:
    bootstrap from the value of the final observation) are kept apart.
    """

    obs: Array  # [N, obs_dim] float32, zero-padded per agent
    state: Array  # [state_dim] float32, global state for centralised critics
    reward: Array  # [N] float32
    terminated: Array  # [] bool
    truncated: Array  # [] bool
    active: Array  # [N] bool: agent still in play
    action_mask: Array  # [N, action_dim] bool: valid discrete actions (used dims if continuous)
    info: dict[str, Any]  # scalar task metrics; wrappers add e.g. ``final_obs``

    @property
    def done(self) -> Array:
        return self.terminated | self.truncated


class AgentSpaces:
    """Derived facts about the per-agent spaces, shared by JAX and host environments.

    Subclasses define ``agents``, ``observation_space(agent)`` and ``action_space(agent)``.
    """

    agents: tuple[str, ...]

    def observation_space(self, agent: str) -> spaces.Space:
        raise NotImplementedError

    def action_space(self, agent: str) -> spaces.Space:
        raise NotImplementedError

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @cached_property
    def discrete(self) -> bool:
        """True when every agent acts in a ``Discrete`` space (actions are ``[N]`` ints)."""
        kinds = {type(self.action_space(a)) for a in self.agents}
        if kinds == {spaces.Discrete}:
            return True
        if kinds == {spaces.Box}:
            return False
        raise TypeError(f"mixed or unsupported action spaces: {sorted(k.__name__ for k in kinds)}")

    @cached_property
    def action_sizes(self) -> np.ndarray:
        """[N] number of discrete actions, or dimension of the continuous action, per agent."""
        return np.array([_action_size(self.action_space(a)) for a in self.agents])

    @cached_property
    def obs_sizes(self) -> np.ndarray:
        """[N] unpadded observation width per agent."""
        return np.array([int(np.prod(self.observation_space(a).shape)) for a in self.agents])

    @property
    def action_dim(self) -> int:
        """Padded action width: max number of discrete actions or max Box dimension."""
        return int(self.action_sizes.max())

    @property
    def obs_dim(self) -> int:
        """Padded observation width."""
        return int(self.obs_sizes.max())

    @cached_property
    def static_action_mask(self) -> np.ndarray:
        """[N, action_dim] bool: the actions (or action dimensions) each agent really has."""
        return np.arange(self.action_dim)[None, :] < self.action_sizes[:, None]

    def agent_index(self, agent: str) -> int:
        try:
            return self.agents.index(agent)
        except ValueError:
            raise ValueError(f"unknown agent {agent!r}; agents are {list(self.agents)}") from None


def _action_size(space: spaces.Space) -> int:
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return int(space.shape[0])
    raise TypeError(f"unsupported action space {space}: use Discrete or a 1-D Box")


class MultiAgentEnv(AgentSpaces):
    """A functional multi-agent environment.

    ``reset`` and ``step`` are pure and jit/vmap-able; ``step`` does not auto-reset (see
    ``envs.wrappers.AutoReset``). Discrete actions are ``[N]`` int32, continuous actions
    ``[N, action_dim]`` float32 (padded; each agent reads its first ``action_sizes[i]``).
    """

    name: str = "env"
    state_dim: int
    render_fps: int = 10  # policy steps per second of simulated time (GIF playback)
    # Teams whose returns are also reported apart, ``return/<team>``: name -> agent indices
    # (e.g. tag's adversaries and good agents, whose rewards have opposite signs).
    teams: dict[str, np.ndarray] = {}

    def reset(self, key: Array) -> tuple[Any, TimeStep]:
        raise NotImplementedError

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Any, TimeStep]:
        raise NotImplementedError

    def render(self, state: Any) -> np.ndarray:
        """An RGB frame ``[H, W, 3]`` uint8 of one (unbatched) state, on the host."""
        raise NotImplementedError(f"{type(self).__name__} does not render")

    @property
    def unwrapped(self) -> MultiAgentEnv:
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, agents={self.num_agents})"


class SharedSpaces:
    """For environments whose agents all have one observation space and one action space
    (``self._obs_space``, ``self._action_space``); mix in before ``MultiAgentEnv``."""

    _obs_space: spaces.Space
    _action_space: spaces.Space

    def observation_space(self, agent: str) -> spaces.Space:
        self.agent_index(agent)
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space:
        self.agent_index(agent)
        return self._action_space
