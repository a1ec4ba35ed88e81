"""Collecting experience, the same way for JAX and PettingZoo environments.

``batched(env, num_envs)`` gives the batched ``reset(key)`` / ``step(key, state, action)``
of either kind: ``vectorize`` for a JAX environment, ``HostEnv`` for PettingZoo (stepped on
the host from inside the jitted program through ``io_callback``). On top of it,
``policy_env_step`` (normalise, act with a key and the training context, step) serves both
the training rollout (``rollout``: a ``lax.scan`` of transitions that keep what ``act``
returned) and the evaluation episodes (``marl.evaluate``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.experimental import io_callback

import envs
from envs.wrappers import ObservationMask, PettingZooVecEnv, from_pettingzoo, vectorize
from marl.algos import RunningStats
from marl.config import Config
from marl.policies import Acted, ActorCritic, Context, Observation

Array = jax.Array
HOST_PREFIX = "pettingzoo:"


def make_env(cfg: Config, num_envs: int | None = None, film_fps: float = 0):
    """The configured JAX environment, or for ``env.name="pettingzoo:<module>"`` a batch of
    ``num_envs`` (default ``env.num_envs``) host environments from ``<module>.parallel_env``
    (``film_fps``: keeping ``rgb_array`` frames of their first episodes at about that rate)."""
    name, e = cfg.env.name, cfg.env
    if not name.startswith(HOST_PREFIX):
        env = envs.make(name, **e.options)
        if e.observe_first is None:
            return env
        return ObservationMask(env, e.observe_first, e.observe_first_agents)
    if e.observe_first is not None or e.fixed_start:
        raise ValueError(
            "env.observe_first and env.fixed_start are for JAX environments, not " + name
        )
    module = name[len(HOST_PREFIX) :]
    try:
        parallel_env = importlib.import_module(module).parallel_env
    except ModuleNotFoundError as err:
        if err.name and module.startswith(err.name):  # the module itself does not exist
            raise ValueError(f"env.name={name!r}: there is no module {module!r}") from None
        family = module.split(".")[1] if module.startswith("pettingzoo.") else None
        hint = f': pip install "pettingzoo[{family}]"' if family else ""
        raise ModuleNotFoundError(
            f"env.name={name!r} needs {err.name!r}, which is not installed{hint}"
        ) from None
    except AttributeError as err:
        raise ValueError(f"env.name={name!r}: {module} has no parallel_env ({err})") from None
    options = dict(cfg.env.options)
    if film_fps:
        options["render_mode"] = "rgb_array"
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # pygame renders without a display
    return from_pettingzoo(lambda: parallel_env(**options), num_envs or cfg.env.num_envs, film_fps)


def is_host(env) -> bool:
    return isinstance(env, PettingZooVecEnv)


class HostEnv:
    """A ``from_pettingzoo`` batch behind the batched JAX interface: ``reset`` and ``step``
    call the Python environments through ``io_callback``, so they run inside jitted code.
    The environments' state lives in the Python objects; ``state`` is a placeholder."""

    def __init__(self, env: PettingZooVecEnv):
        self.env, self.num_envs = env, env.num_envs
        ts = env.reset(seed=0)
        self._spec = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), ts)

    def reset(self, key: Array):
        seed = jax.random.randint(key, (), 0, 2**31 - 1)
        return jnp.zeros(()), io_callback(lambda s: self.env.reset(seed=int(s)), self._spec, seed)

    def step(self, key: Array, state, action: Array):
        return state, io_callback(lambda a: self.env.step(np.asarray(a)), self._spec, action)


def batched(env, num_envs: int, fixed_start: bool = False):
    """The batched training stack of a JAX environment, or the jit view of a host batch."""
    if not is_host(env):
        return vectorize(env, num_envs, fixed_start)
    if env.num_envs != num_envs:
        raise ValueError(f"the host environment has {env.num_envs} copies, not {num_envs}")
    return HostEnv(env)


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

    env_state: Any  # batched JAX env state; a placeholder for host environments
    obs: Observation  # [B, ...] raw next input
    carry: Any  # [B, ...] recurrent state
    norm: Normalizer


@struct.dataclass
class Transition:
    obs: Observation  # [B, ...] normalised input the policy acted on
    action: Array  # [B, N] or [B, N, A]
    log_prob: dict  # {role: [B, K]}
    value: dict  # {role: [B, K]}
    extras: Any  # what ``act`` stored for ``evaluate`` ([B, ...] leaves)
    reward: Array  # [B, N]
    final_obs: Observation  # [B, ...] normalised observation after the step (pre-reset)
    carry: Any  # [B, ...] the policy's carry after the step (for the bootstrap value)
    terminal: Array  # [B, N] bool: no bootstrap (task ended, or the agent dropped out)
    done: Array  # [B] bool: episode boundary after this step
    info: dict  # [B] episode statistics and task metrics (read where ``done``)
    metrics: dict  # [B, ...] ``act``'s aux


def policy_env_step(
    policy: ActorCritic,
    venv,
    params,
    method_state,
    runner: Runner,
    key: Array,
    ctx: Context,
    deterministic: bool = False,
    update_norm: bool = True,
) -> tuple[Runner, Observation, Acted, Any]:
    """Normalise the input, act on it, step the environments.
    Returns (next runner, the input acted on, what ``act`` returned, the timestep)."""
    k_act, k_env = jax.random.split(key)
    norm = runner.norm.update(runner.obs) if update_norm else runner.norm
    obs_in = norm(runner.obs)
    acted = policy.act(params, method_state, runner.carry, obs_in, k_act, ctx, deterministic)
    env_state, ts = venv.step(k_env, runner.env_state, acted.action)
    done = ts.terminated | ts.truncated
    next_runner = Runner(env_state, Observation.from_timestep(ts, done), acted.carry, norm)
    return next_runner, obs_in, acted, ts


def rollout(policy: ActorCritic, venv, params, method_state, runner, key, num_steps, ctx):
    """``num_steps`` steps of ``venv`` -> (runner, ``[T, B]`` transitions)."""

    def step(runner, key):
        next_runner, obs_in, acted, ts = policy_env_step(
            policy, venv, params, method_state, runner, key, ctx
        )
        done = ts.terminated | ts.truncated
        final = Observation(
            ts.info["final_obs"],
            ts.info["final_state"],
            ts.action_mask,
            ts.active,
            jnp.zeros_like(done),
        )
        # An agent that dropped out of a running episode has terminated on its own.
        terminal = ts.terminated[:, None] | (~done[:, None] & ~ts.active)
        transition = Transition(
            obs=obs_in,
            action=acted.action,
            log_prob=policy.by_role(acted.log_prob),
            value=policy.by_role(acted.value),
            extras=acted.extras,
            reward=ts.reward,
            final_obs=next_runner.norm(final),
            carry=acted.carry,
            terminal=terminal,
            done=done,
            info=episode_info(ts),
            metrics=acted.aux,
        )
        return next_runner, transition

    return jax.lax.scan(step, runner, jax.random.split(key, num_steps))


TASK = "task/"  # info entries that are task variables, not metrics


def task_variables(info: dict) -> dict:
    """The task variables of a step's ``info``: ``{name: value}`` without the ``task/``."""
    return {k.removeprefix(TASK): v for k, v in info.items() if k.startswith(TASK)}


def episode_info(ts) -> dict:
    """Per-env scalars of a step: task metrics, ``return`` (episode return, mean over agents)
    and ``episode_length`` (meaningful where the episode ended). Not the task variables
    (``task/...``: what the symbols of a channel may be about, e.g. the goal landmark)."""
    info = {k: v for k, v in ts.info.items() if not k.startswith(("final_", TASK))}
    info["return"] = info.pop("episode_return").mean(-1)
    return info
