"""Any JaxMARL environment as one of ours (optional: ``pip install -e ".[bench]"``).

JaxMARL's ``step_env`` (its step without the auto-reset) becomes ``step``; the per-agent
dicts become stacked ``[N, ...]`` arrays (observations zero-padded to the widest agent), the
global state is JaxMARL's ``world_state`` where the environment gives one (else the
concatenated observations), action masks come from ``get_avail_actions``, and an agent that
is done while the episode goes on (a dead SMAX unit) is inactive (at the episode's end every agent counts as active). JaxMARL says only "done":
``terminal(state)`` tells a real ending (terminated) from a time limit (truncated); without
it every ending is a time limit, as in MPE. ``metrics(state)`` adds scalar task metrics
(e.g. SMAX's ``won``) to ``TimeStep.info``.

``smax(map_name)``: SMAX against its heuristic enemy (``HeuristicEnemySMAX``), terminated when
one team is dead, with ``won`` = every enemy dead while an ally lives; registered as
``smax/3m`` and ``smax/5m_vs_6m``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces

from envs.core import Array, MultiAgentEnv, TimeStep


def _space(space) -> spaces.Space:
    """A JaxMARL space as a gymnasium one."""
    kind = type(space).__name__
    if kind == "Discrete":
        return spaces.Discrete(int(space.n))
    if kind == "Box":
        shape = tuple(space.shape) if isinstance(space.shape, tuple | list) else (space.shape,)
        low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
        high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
        return spaces.Box(low, high, shape, np.float32)
    raise TypeError(f"unsupported JaxMARL space {kind}: use Discrete or Box")


class FromJaxMARL(MultiAgentEnv):
    def __init__(
        self,
        env,
        name: str | None = None,
        terminal: Callable[[Any], Array] | None = None,
        metrics: Callable[[Any], dict[str, Array]] | None = None,
        rebuild: tuple[Callable, tuple] | None = None,
    ):
        """``rebuild``: ``(factory, args)`` that make this environment again, for pickling
        (JaxMARL's wrappers do not unpickle)."""
        self.env = env
        self._rebuild = rebuild
        self.name = name or getattr(env, "name", type(env).__name__)
        self.agents = tuple(env.agents)
        self._obs_spaces = {a: _space(env.observation_space(a)) for a in self.agents}
        self._act_spaces = {a: _space(env.action_space(a)) for a in self.agents}
        if not hasattr(env, "max_steps"):
            raise ValueError(
                f"{self.name}: a JaxMARL environment without max_steps (its time limit)"
            )
        self.max_steps = int(env.max_steps)
        self._terminal, self._metrics = terminal, metrics
        obs, _ = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
        self.state_dim = int(
            np.prod(obs["world_state"].shape) if "world_state" in obs else sum(self.obs_sizes)
        )

    def observation_space(self, agent: str) -> spaces.Space:
        return self._obs_spaces[self.agents[self.agent_index(agent)]]

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_spaces[self.agents[self.agent_index(agent)]]

    def reset(self, key: Array):
        obs, state = self.env.reset(key)
        done = {a: jnp.array(False) for a in self.agents}
        zeros = jnp.zeros(self.num_agents, jnp.float32)
        return state, self._timestep(state, obs, zeros, done, jnp.array(False))

    def step(self, key: Array, state, actions: Array):
        acts = {a: actions[i] for i, a in enumerate(self.agents)}
        if not self.discrete:
            acts = {a: acts[a][: self.action_sizes[i]] for i, a in enumerate(self.agents)}
        obs, state, reward, done, _ = self.env.step_env(key, state, acts)
        reward = jnp.stack([reward[a] for a in self.agents]).astype(jnp.float32)
        return state, self._timestep(state, obs, reward, done, done["__all__"])

    def _timestep(self, state, obs: dict, reward: Array, done: dict, over: Array) -> TimeStep:
        rows = [jnp.ravel(obs[a]).astype(jnp.float32) for a in self.agents]
        stacked = jnp.stack([jnp.pad(r, (0, self.obs_dim - r.shape[0])) for r in rows])
        ended = jnp.asarray(over) & (self._terminal(state) if self._terminal else False)
        if hasattr(self.env, "get_avail_actions"):
            avail = self.env.get_avail_actions(state)
            mask = jnp.stack([self._pad_mask(avail[a], i) for i, a in enumerate(self.agents)])
        else:
            mask = jnp.asarray(self.static_action_mask)
        playing = jnp.stack([~jnp.asarray(done[a]) for a in self.agents]) | jnp.asarray(over)
        return TimeStep(
            obs=stacked,
            state=jnp.ravel(obs["world_state"]) if "world_state" in obs else stacked.ravel(),
            reward=reward,
            terminated=ended,
            truncated=jnp.asarray(over) & ~ended,
            active=playing,  # done agents (dead units) are out; at the end all count
            action_mask=mask,
            info=self._metrics(state) if self._metrics else {},
        )

    def _pad_mask(self, avail: Array, i: int) -> Array:
        avail = jnp.asarray(avail, bool)
        if not self.discrete:
            return jnp.asarray(self.static_action_mask[i])
        return jnp.pad(avail, (0, self.action_dim - avail.shape[0]))

    def __reduce__(self):
        return self._rebuild if self._rebuild is not None else super().__reduce__()


def from_jaxmarl(env, **kwargs) -> FromJaxMARL:
    """A JaxMARL environment (``jaxmarl.make(...)``) as one of ours; see the module doc."""
    return FromJaxMARL(env, **kwargs)


def smax(map_name: str = "3m", max_steps: int = 100) -> FromJaxMARL:
    """SMAX scenario ``map_name`` against the heuristic enemy, ``max_steps`` long."""
    try:
        import jaxmarl
        from jaxmarl.environments.smax import map_name_to_scenario
    except ImportError as e:
        raise ImportError('SMAX needs JaxMARL: pip install -e ".[bench]"') from e
    scenario = map_name_to_scenario(map_name)
    env = jaxmarl.make("HeuristicEnemySMAX", scenario=scenario, max_steps=max_steps)
    allies = env.num_allies

    def alive(state):
        return state.state.unit_alive[:allies].any(), state.state.unit_alive[allies:].any()

    def terminal(state):
        ours, theirs = alive(state)
        return ~ours | ~theirs

    def metrics(state):
        ours, theirs = alive(state)
        return {"won": (ours & ~theirs).astype(jnp.float32)}

    return FromJaxMARL(env, f"smax/{map_name}", terminal, metrics, (smax, (map_name, max_steps)))
