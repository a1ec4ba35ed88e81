"""Wrappers: auto-reset, episode statistics, batching, observation ablations, and PettingZoo
adapters both ways, and JaxMARL environments."""

from envs.wrappers.base import Wrapper
from envs.wrappers.episodes import AutoReset, EpisodeStats
from envs.wrappers.from_jaxmarl import FromJaxMARL, from_jaxmarl
from envs.wrappers.from_pettingzoo import PettingZooVecEnv, from_pettingzoo
from envs.wrappers.observe import ObservationMask
from envs.wrappers.to_pettingzoo import PettingZooEnv, to_pettingzoo
from envs.wrappers.vector import VecEnv, vectorize

__all__ = [
    "AutoReset",
    "EpisodeStats",
    "FromJaxMARL",
    "ObservationMask",
    "PettingZooEnv",
    "PettingZooVecEnv",
    "VecEnv",
    "Wrapper",
    "from_jaxmarl",
    "from_pettingzoo",
    "to_pettingzoo",
    "vectorize",
]
