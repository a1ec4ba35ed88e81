"""Episode wrappers: auto-reset that keeps the final observation, and episode statistics."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from envs.core import Array, TimeStep
from envs.wrappers.base import Wrapper


def _select(done: Array, if_done: Any, otherwise: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.where(done, a, b), if_done, otherwise)


@struct.dataclass
class FixedStartState:
    env_state: Any
    start_key: Array  # the key of the first reset, used for every later one


class AutoReset(Wrapper):
    """Resets inside ``step`` when an episode ends.

    The returned ``obs``, ``state``, ``active`` and ``action_mask`` start the new episode;
    ``reward``, ``terminated``, ``truncated`` and ``info`` belong to the step that ended the
    old one. ``info["final_obs"]`` / ``info["final_state"]`` keep that step's observation
    and global state, so a truncated episode can bootstrap from their value.

    ``fixed_start``: every episode restarts from the first reset's key, i.e. from the same
    initial state (the HAMMER reference's ``reset(seed)`` before every episode).
    """

    def __init__(self, env, fixed_start: bool = False):
        super().__init__(env)
        self.fixed_start = fixed_start

    def reset(self, key: Array) -> tuple[Any, TimeStep]:
        state, ts = self.env.reset(key)
        if self.fixed_start:
            state = FixedStartState(state, key)
        return state, _with_final(ts, ts)

    def step(self, key: Array, state: Any, actions: Array) -> tuple[Any, TimeStep]:
        key_step, key_reset = jax.random.split(key)
        if self.fixed_start:
            state, key_reset = state.env_state, state.start_key
        state_step, ts_step = self.env.step(key_step, state, actions)
        state_reset, ts_reset = self.env.reset(key_reset)
        done = ts_step.done
        start = ts_reset.replace(
            reward=ts_step.reward,
            terminated=ts_step.terminated,
            truncated=ts_step.truncated,
            info=ts_step.info,
        )
        state = _select(done, state_reset, state_step)
        if self.fixed_start:
            state = FixedStartState(state, key_reset)
        return state, _with_final(_select(done, start, ts_step), ts_step)

    def render(self, state: Any):
        return self.env.render(state.env_state if self.fixed_start else state)


def _with_final(ts: TimeStep, final: TimeStep) -> TimeStep:
    return ts.replace(info={**ts.info, "final_obs": final.obs, "final_state": final.state})


@struct.dataclass
class EpisodeStatsState:
    env_state: Any
    episode_return: Array  # [N] rewards summed so far this episode
    episode_length: Array  # [] int32


class EpisodeStats(Wrapper):
    """Adds ``info["episode_return"]`` ([N]), ``info["episode_length"]`` and each team's mean
    return ``info["return/<team>"]`` (``MultiAgentEnv.teams``) of the episode that ended at
    this step (valid where ``done``). Wrap it around ``AutoReset``."""

    def reset(self, key: Array) -> tuple[EpisodeStatsState, TimeStep]:
        env_state, ts = self.env.reset(key)
        zeros = jnp.zeros(self.num_agents, jnp.float32)
        state = EpisodeStatsState(env_state, zeros, jnp.array(0, jnp.int32))
        return state, self._with_stats(ts, zeros, state.episode_length)

    def step(self, key: Array, state: EpisodeStatsState, actions: Array):
        env_state, ts = self.env.step(key, state.env_state, actions)
        ret = state.episode_return + ts.reward
        length = state.episode_length + 1
        keep = ~ts.done
        new_state = EpisodeStatsState(env_state, ret * keep, length * keep)
        return new_state, self._with_stats(ts, ret, length)

    def render(self, state: EpisodeStatsState):
        return self.env.render(state.env_state)

    def _with_stats(self, ts: TimeStep, ret: Array, length: Array) -> TimeStep:
        teams = {f"return/{t}": ret[i].mean() for t, i in self.env.unwrapped.teams.items()}
        info = {**ts.info, "episode_return": ret, "episode_length": length, **teams}
        return ts.replace(info=info)
