"""A JAX environment seen as a ``pettingzoo.ParallelEnv`` (host side, one environment).

Actions are checked before they reach JAX: unknown or missing agents, out-of-range,
wrongly shaped, non-integer or non-finite actions raise ``ValueError`` naming the agent.

For clients that copy environments (SuperSuit's vector environments, ``deepcopy``,
multiprocessing):

- A copy is made from the environment's configuration (its pickle, taken once), continues
  the episode in progress and draws its own random key (as mpe2's copies do), so copies
  play different episodes; ``reset(seed=...)`` makes any copy reproducible.
- Views of one configuration share one jitted ``reset`` and ``step`` per process (cached
  on the configuration's pickle): the second copy compiles nothing.
- JAX cannot run in a process forked from one in which it had started (it deadlocks): such
  a copy raises ``RuntimeError`` naming the ``spawn`` start method instead. Unpickling a
  copy touches no JAX; the environment itself is rebuilt at its first use.
"""

from __future__ import annotations

import hashlib
import os
from copy import deepcopy
from typing import Any

import cloudpickle
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs.core import MultiAgentEnv, TimeStep

# Whether JAX had started in the process this one was forked from (set in forked children).
_FORK = {"jax_started": False, "forked_after_jax": False}


def _jax_started() -> bool:
    try:
        from jax._src.xla_bridge import backends_are_initialized
    except ImportError:  # moved in a later JAX: assume it has started
        return True
    return backends_are_initialized()


def _before_fork() -> None:
    _FORK["jax_started"] = _jax_started()


def _in_forked_child() -> None:
    _FORK["forked_after_jax"] = _FORK["jax_started"]


os.register_at_fork(before=_before_fork, after_in_child=_in_forked_child)


def _check_not_forked() -> None:
    if _FORK["forked_after_jax"]:
        raise RuntimeError(
            "this process was forked from one in which JAX had started, and JAX deadlocks "
            "in forked processes: start the worker processes with the 'spawn' method, e.g. "
            "multiprocessing.set_start_method('spawn') under `if __name__ == '__main__':`"
        )


class _Compiled:
    """One environment configuration's ``reset`` and ``step``, jitted, each carrying the
    random key and returning the time step packed into one float32 buffer (one transfer
    to the host; integer and boolean leaves are bit-cast, so the round trip is exact)."""

    def __init__(self, env: MultiAgentEnv):
        _, ts = jax.eval_shape(lambda: env.reset(jax.random.PRNGKey(0)))
        leaves, self.treedef = jax.tree.flatten(ts)
        ends = np.cumsum([leaf.size for leaf in leaves])
        # Per leaf: its slice of the buffer, whether it is bit-cast, its dtype and shape.
        self.layout = [
            (
                end - leaf.size,
                end,
                not jnp.issubdtype(leaf.dtype, jnp.floating),
                leaf.dtype,
                leaf.shape,
            )
            for leaf, end in zip(leaves, ends, strict=True)
        ]

        def reset(key):
            key, sub = jax.random.split(key)
            state, ts = env.reset(sub)
            return key, state, _pack(ts)

        def step(key, state, actions):
            key, sub = jax.random.split(key)
            state, ts = env.step(sub, state, actions)
            return key, state, _pack(ts)

        self.reset = jax.jit(reset)
        self.step = jax.jit(step)

    def unpack(self, packed: jax.Array) -> TimeStep:
        """The time step as numpy arrays."""
        buffer = np.asarray(packed)
        leaves = [
            (buffer[a:b].view(np.int32) if cast else buffer[a:b]).astype(dtype).reshape(shape)
            for a, b, cast, dtype, shape in self.layout
        ]
        return self.treedef.unflatten(leaves)


def _pack(ts: TimeStep) -> jax.Array:
    return jnp.concatenate(
        [
            (
                x.astype(jnp.float32)
                if jnp.issubdtype(x.dtype, jnp.floating)
                else jax.lax.bitcast_convert_type(x.astype(jnp.int32), jnp.float32)
            ).ravel()
            for x in jax.tree.leaves(ts)
        ]
    )


# Per process: configuration digest -> its compiled functions.
_COMPILED: dict[bytes, _Compiled] = {}


def _configuration(env: MultiAgentEnv) -> bytes | None:
    """The environment's pickle (its whole configuration), or None if it does not pickle
    and unpickle."""
    try:
        config = cloudpickle.dumps(env)
        cloudpickle.loads(config)
    except Exception:  # noqa: BLE001 - any object may fail to (un)pickle in its own way
        return None
    return config


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
        _check_not_forked()
        self._env = env
        self._config = _configuration(env)
        self._compiled = None
        self.render_mode = render_mode
        self._window = None  # human rendering: (figure, image)
        self.metadata = {**self.metadata, "name": env.name, "render_fps": env.render_fps}
        self.possible_agents = list(env.agents)
        # Each view owns its spaces (PettingZoo seeds them per environment).
        self._spaces = {
            a: (deepcopy(env.observation_space(a)), deepcopy(env.action_space(a)))
            for a in env.agents
        }
        self._agent_index = {a: i for i, a in enumerate(self.possible_agents)}
        self._discrete = env.discrete
        self._action_shape = (env.num_agents,) if env.discrete else (env.num_agents, env.action_dim)
        self._obs_sizes = env.obs_sizes
        self.agents: list[str] = []
        self.state_space = spaces.Box(-np.inf, np.inf, (env.state_dim,), np.float32)
        self._key = None  # drawn from OS entropy at first use unless seeded
        self._state = None
        self._timestep = None

    @property
    def env(self) -> MultiAgentEnv:
        """The JAX environment (a copy rebuilds it from its configuration at first use)."""
        if self._env is None:
            _check_not_forked()
            self._env = cloudpickle.loads(self._config)
        return self._env

    def observation_space(self, agent: str) -> spaces.Space:
        return self._spaces[agent][0]

    def action_space(self, agent: str) -> spaces.Space:
        return self._spaces[agent][1]

    def reset(self, seed: int | None = None, options: dict | None = None):
        fns = self._functions()
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, self._state, packed = fns.reset(self._fresh_key())
        self._timestep = fns.unpack(packed)
        self.agents = [
            a for a, on in zip(self.possible_agents, self._timestep.active, strict=True) if on
        ]
        return self._observations(), {a: {} for a in self.agents}

    def step(self, actions: dict[str, Any]):
        if self._state is None:
            raise ValueError("call reset() before step()")
        if not self.agents:
            raise ValueError("the episode is over (no agents left): call reset()")
        fns = self._functions()
        stacked = self._stack_actions(actions)
        self._key, self._state, packed = fns.step(self._fresh_key(), self._state, stacked)
        ts = self._timestep = fns.unpack(packed)
        acted = self.agents
        obs = self._observations()
        index = self._agent_index
        rewards = {a: float(ts.reward[index[a]]) for a in acted}
        terminated, truncated = bool(ts.terminated), bool(ts.truncated)
        ended = terminated or truncated
        # A whole-team end is a termination or a truncation; an agent dropping out terminates.
        terminations = {a: terminated or (not ended and not ts.active[index[a]]) for a in acted}
        truncations = {a: truncated for a in acted}
        info = {k: v.tolist() for k, v in ts.info.items()}
        self.agents = [a for a in acted if ts.active[index[a]] and not ended]
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

    def __getstate__(self) -> dict:
        """The configuration and the episode in progress; the copy draws its own key."""
        if self._config is None:
            raise TypeError(
                f"{self.metadata['name']} cannot be copied: its environment does not pickle"
            )
        _check_not_forked()
        picklable = {**self.__dict__, "_env": None, "_compiled": None, "_window": None}
        picklable["_state"] = jax.device_get(self._state)
        picklable["_key"] = None
        return picklable

    def _functions(self) -> _Compiled:
        if self._compiled is None:
            _check_not_forked()
            if self._config is None:  # no configuration to share the compilation by
                self._compiled = _Compiled(self.env)
            else:
                digest = hashlib.sha256(self._config).digest()
                if digest not in _COMPILED:
                    _COMPILED[digest] = _Compiled(self.env)
                self._compiled = _COMPILED[digest]
        return self._compiled

    def _fresh_key(self) -> jax.Array:
        if self._key is None:
            self._key = jax.random.PRNGKey(np.random.SeedSequence().entropy % 2**32)
        return self._key

    def _observations(self) -> dict[str, np.ndarray]:
        obs = self._timestep.obs
        return {
            a: obs[i, : self._obs_sizes[i]]
            for i, a in enumerate(self.possible_agents)
            if a in self.agents
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
        out = np.zeros(self._action_shape, np.int32 if self._discrete else np.float32)
        for agent, action in actions.items():
            i = self._agent_index[agent]
            space = self.action_space(agent)
            if self._discrete:
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
