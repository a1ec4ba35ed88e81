"""Base class of the JAX environment wrappers."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from envs.core import MultiAgentEnv


class Wrapper(MultiAgentEnv):
    """Delegates everything it does not override to the wrapped environment."""

    def __init__(self, env: MultiAgentEnv):
        self.env = env
        self.agents = env.agents

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not yet set (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self.env, name)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.env.observation_space(agent)

    def action_space(self, agent: str) -> spaces.Space:
        return self.env.action_space(agent)

    @property
    def name(self) -> str:
        return self.env.name

    @property
    def unwrapped(self) -> MultiAgentEnv:
        return self.env.unwrapped

    def render(self, state: Any) -> Any:
        return self.env.render(state)
