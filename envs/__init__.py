"""Pure-JAX multi-agent environments and adapters to and from PettingZoo."""

from envs.core import AgentSpaces, MultiAgentEnv, TimeStep
from envs.registry import env_options, list_envs, make, register

__all__ = [
    "AgentSpaces",
    "MultiAgentEnv",
    "TimeStep",
    "env_options",
    "list_envs",
    "make",
    "register",
]
