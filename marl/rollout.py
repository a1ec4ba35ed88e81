"""Collecting experience: one policy step and one transition, shared by the jitted rollout
over JAX environments (``lax.scan``) and the host rollout over PettingZoo environments."""

from __future__ import annotations

import importlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

import envs
from envs.wrappers import PettingZooVecEnv, from_pettingzoo
from marl.config import Config
from marl.policies import ActorCritic, Observation
from marl.ppo import RunningStats

Array = jax.Array
HOST_PREFIX = "pettingzoo:"


def make_env(cfg: Config, num_envs: int | None = None):
    """The configured JAX environment, or for ``env.name="pettingzoo:<module>"`` a batch of
    ``num_envs`` (default ``env.num_envs``) host environments from ``<module>.parallel_env``."""
    name = cfg.env.name
    if not name.startswith(HOST_PREFIX):
        return envs.make(name, **cfg.env.options)
    module = name[len(HOST_PREFIX) :]
    try:
        parallel_env = importlib.import_module(module).parallel_env
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"env.name={name!r}: cannot import {module}.parallel_env ({err})"
        ) from None
    return from_pettingzoo(lambda: parallel_env(**cfg.env.options), num_envs or cfg.env.num_envs)


def is_host(env) -> bool:
    return isinstance(env, PettingZooVecEnv)


@struct.dataclass
class Normalizer:
    """Running statistics of observations and global states (identity when disabled)."""

    obs: RunningStats  # [obs_dim]
    state: RunningStats  # [state_dim]
    enabled: bool = struct.field(pytree_node=False, default=False)

    def update(self, x: Observation) -> Normalizer:
        if not self.enabled:
            return self
        return self.replace(obs=self.obs.update(x.obs, x.active), state=self.state.update(x.state))

    def __call__(self, x: Observation) -> Observation:
        if not self.enabled:
            return x
        obs = jnp.where(x.active[..., None], self.obs.normalize(x.obs), 0.0)
        return x.replace(obs=obs, state=self.state.normalize(x.state))


@struct.dataclass
class Runner:
    """What a rollout advances: environments, the next input, recurrent state, normaliser."""

    env_state: Any  # batched JAX env state; None for host environments
    obs: Observation  # [B, ...] raw next input
    carry: Any  # [B, ...] recurrent state
    norm: Normalizer


@struct.dataclass
class Transition:
    obs: Observation  # [B, ...] normalised input the policy acted on
    action: Array  # [B, N] or [B, N, A]
    log_prob: Array  # [B, N]
    value: Array  # [B, N]
    reward: Array  # [B, N]
    next_value: Array  # [B, N] critic on the observation after the step (pre-reset)
    terminal: Array  # [B, N] bool: no bootstrap (task ended, or the agent dropped out)
    done: Array  # [B] bool: episode boundary after this step
    info: dict  # [B] episode statistics and task metrics (read where ``done``)


def policy_step(policy: ActorCritic, params, runner: Runner, key: Array, deterministic=False):
    """Fold the current input into the normaliser and act on it."""
    norm = runner.norm.update(runner.obs)
    obs_in = norm(runner.obs)
    carry, action, log_prob, value, _ = policy.act(params, runner.carry, obs_in, key, deterministic)
    return runner.replace(norm=norm), obs_in, carry, action, log_prob, value


def record(policy: ActorCritic, params, runner: Runner, obs_in, carry, action, log_prob, value, ts):
    """The transition of one environment step and the runner for the next."""
    done = ts.terminated | ts.truncated
    final = Observation(
        ts.info["final_obs"],
        ts.info["final_state"],
        ts.action_mask,
        ts.active,
        jnp.zeros_like(done),
    )
    next_value = policy.value(params, carry, runner.norm(final))
    # An agent that dropped out of a running episode has terminated on its own.
    terminal = ts.terminated[:, None] | (~done[:, None] & ~ts.active)
    transition = Transition(
        obs_in, action, log_prob, value, ts.reward, next_value, terminal, done, episode_info(ts)
    )
    next_runner = runner.replace(obs=Observation.from_timestep(ts, done), carry=carry)
    return next_runner, transition


def episode_info(ts) -> dict:
    """Per-env scalars of a step: task metrics, ``return`` (episode return, mean over agents)
    and ``episode_length`` (meaningful where the episode ended)."""
    info = {k: v for k, v in ts.info.items() if not k.startswith("final_")}
    info["return"] = info.pop("episode_return").mean(-1)
    return info


def jax_rollout(policy, venv, params, runner: Runner, key: Array, num_steps: int):
    """``num_steps`` steps of a batched JAX env under ``lax.scan`` -> (runner, [T, B] transitions)."""

    def step(runner, key):
        k_act, k_env = jax.random.split(key)
        runner, obs_in, carry, action, log_prob, value = policy_step(policy, params, runner, k_act)
        env_state, ts = venv.step(k_env, runner.env_state, action)
        runner = runner.replace(env_state=env_state)
        return record(policy, params, runner, obs_in, carry, action, log_prob, value, ts)

    return jax.lax.scan(step, runner, jax.random.split(key, num_steps))


class HostRollout:
    """The same rollout over a host-side batched environment (``from_pettingzoo``).

    Policy steps are jitted and ``vmap``-ed over a seed axis of size 1; the environment
    steps in Python between them.
    """

    def __init__(self, policy: ActorCritic, host_env):
        self.env = host_env
        self._act = jax.jit(jax.vmap(lambda p, r, k: policy_step(policy, p, r, k)))
        self._record = jax.jit(jax.vmap(lambda *a: record(policy, *a)))

    def first_observation(self, seed: int) -> Observation:
        ts = self.env.reset(seed=seed)
        return _seed_axis(Observation.from_timestep(ts, np.zeros(self.env.num_envs, bool)))

    def __call__(self, params, runner: Runner, key: Array, num_steps: int):
        transitions = []
        for k in jax.random.split(key, num_steps):
            runner, obs_in, carry, action, log_prob, value = self._act(params, runner, k[None])
            ts = _seed_axis(self.env.step(np.asarray(action[0])))
            runner, transition = self._record(
                params, runner, obs_in, carry, action, log_prob, value, ts
            )
            transitions.append(transition)
        stacked = jax.tree.map(lambda *xs: jnp.stack(xs, 1), *transitions)  # [S, T, ...]
        return runner, stacked


def _seed_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: jnp.asarray(x)[None], tree)
