"""What every policy shares: its input, the training context, its action distribution, and
the interface the trainer calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
from flax import struct

from envs.core import TimeStep
from marl.config import GroupConfig

Array = jax.Array
Params = Any
MethodState = Any  # state the optimiser never sees (EMA codebooks, usage counts), a pytree
Carry = Any  # recurrent state, a pytree with leading batch dims (empty arrays if feed-forward)


@struct.dataclass
class Observation:
    """A policy's input at one step (leading batch dims ``[...]``)."""

    obs: Array  # [..., N, obs_dim]
    state: Array  # [..., state_dim]
    action_mask: Array  # [..., N, action_dim] bool
    active: Array  # [..., N] bool
    reset: Array  # [...] bool: first step of an episode (recurrent state restarts)

    @classmethod
    def from_timestep(cls, ts: TimeStep, reset: Array) -> Observation:
        return cls(ts.obs, ts.state, ts.action_mask, ts.active, reset)


@struct.dataclass
class Context:
    """Where training stands, for methods whose behaviour changes with it (warm-up phases,
    bi-level epochs, decays). While acting, ``epoch`` and ``minibatch`` are 0."""

    update: Array  # [] int32: updates done before this one
    progress: Array  # [] float32: fraction of training done, update / num_updates
    epoch: Array  # [] int32
    minibatch: Array  # [] int32
    training: bool = struct.field(pytree_node=False, default=True)  # False: evaluation episodes

    @classmethod
    def at(cls, update: Array, num_updates: int, epoch=0, minibatch=0, training=True) -> Context:
        return cls(
            jnp.asarray(update, jnp.int32),
            jnp.asarray(update, jnp.float32) / num_updates,
            jnp.asarray(epoch, jnp.int32),
            jnp.asarray(minibatch, jnp.int32),
            training,
        )


@dataclass(frozen=True)
class Role:
    """A learner inside a policy, with its own advantages, value normalisation and loss.

    ``units="agents"``: one unit per agent, outputs ``[..., N]``, masked by ``active``.
    ``units="team"``: one unit for the whole team (e.g. a central messenger), ``[..., 1]``.
    ``reward="own"``: each agent's own reward; ``"team"``: the mean over agents.
    """

    units: str = "agents"
    reward: str = "own"

    def __post_init__(self):
        if self.units not in ("agents", "team") or self.reward not in ("own", "team"):
            raise ValueError(f"{self}: units is 'agents' or 'team', reward is 'own' or 'team'")
        if self.units == "team" and self.reward == "own":
            raise ValueError(f"{self}: a team unit has no reward of its own; use reward='team'")


class Acted(NamedTuple):
    """What ``act`` returns. ``log_prob`` / ``value``: ``[..., N]``, or ``{role: [..., K]}``."""

    carry: Carry
    action: Array  # [..., N] ints or [..., N, A] floats
    log_prob: Any
    value: Any
    extras: Any  # stored with the step and handed back to ``evaluate``, any pytree
    aux: dict  # step metrics (means over the rollout are logged as ``rollout/<key>``)


class Evaluated(NamedTuple):
    """What ``evaluate`` returns: per role like ``Acted``, and the updated method state."""

    log_prob: Any
    entropy: Any
    value: Any
    method_state: MethodState
    aux: dict  # ``loss/...`` entries join the loss; the rest are metrics (any shape)


def groups_by_module(params: Params, groups: dict[str, str], default: str = "default") -> Any:
    """Group labels for flax ``{"params": {module: tree}}``: by top-level module name."""

    def label(name, tree):
        return jax.tree.map(lambda _: groups.get(name, default), tree)

    return {"params": {name: label(name, tree) for name, tree in params["params"].items()}}


class ActionDist:
    """Per-agent action distribution over padded actions.

    Discrete: a categorical over ``action_dim`` logits with invalid actions masked out.
    Continuous: a diagonal Gaussian whose padded dimensions are ignored.
    ``log_prob``/``entropy`` are ``[..., N]``.
    """

    def __init__(self, out: Array, mask: Array, discrete: bool, log_std: Array | None = None):
        self.discrete, self.mask = discrete, mask
        if discrete:
            self.dist = distrax.Categorical(logits=jnp.where(mask, out, -1e9))
        else:
            self.dist = distrax.Normal(out, jnp.exp(jnp.broadcast_to(log_std, out.shape)))

    def sample(self, key: Array) -> Array:
        return self.dist.sample(seed=key)

    def mode(self) -> Array:
        return self.dist.mode() if self.discrete else self.dist.loc

    def log_prob(self, action: Array) -> Array:
        if self.discrete:
            return self.dist.log_prob(action)
        return jnp.sum(jnp.where(self.mask, self.dist.log_prob(action), 0.0), -1)

    def entropy(self) -> Array:
        if self.discrete:
            return self.dist.entropy()
        return jnp.sum(jnp.where(self.mask, self.dist.entropy(), 0.0), -1)


class ActorCritic:
    """The interface the trainer uses. Batch dims ``[...]`` lead every array.

    - ``init(key, obs) -> (params, method_state)``
    - ``initial_carry(batch_shape) -> carry``
    - ``act(params, method_state, carry, obs, key, ctx, deterministic) -> Acted``
    - ``value(params, method_state, carry, obs, key, ctx) -> value``: the critic alone, on
      the observation after a step (the truncation bootstrap), from the carry ``act`` returned
    - ``evaluate(params, method_state, carry0, obs, action, extras, key, ctx) -> Evaluated``
      over a ``[T, B, ...]`` sequence (feed-forward policies accept any leading dims), with
      the ``extras`` that ``act`` returned for those steps

    ``roles`` names the learners; a policy with one role returns plain ``[..., N]`` arrays,
    one with several returns ``{role: array}``. ``param_groups`` labels the parameters with
    group names and ``group_defaults`` says how each group is optimised (``algo.groups``
    overrides it field by field). ``statistics``, if set, is the evaluator's hook.
    ``pretrain``, if set, runs once at initialisation, before any update:
    ``pretrain(key, params, method_state, sample) -> (params, method_state)``, where
    ``sample(key)`` gives the observations of fresh episodes ``[E, ...]`` (e.g. to pretrain a
    frozen encoder kept in the method state).
    """

    recurrent: bool = False
    roles: dict[str, Role] = {"agents": Role()}
    # The evaluator's hook: ``statistics(episodes) -> {name: number or array}``, host side, on
    # the recorded evaluation steps (``marl.evaluate.Episodes``, numpy ``[seeds, T, E, ...]``).
    statistics: Any = None
    pretrain: Any = None

    def init(self, key: Array, obs: Observation) -> tuple[Params, MethodState]:
        raise NotImplementedError

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Carry:
        raise NotImplementedError

    def act(self, params, method_state, carry, obs, key, ctx, deterministic=False) -> Acted:
        raise NotImplementedError

    def value(self, params, method_state, carry, obs: Observation, key, ctx) -> Any:
        raise NotImplementedError

    def evaluate(self, params, method_state, carry0, obs, action, extras, key, ctx) -> Evaluated:
        raise NotImplementedError

    def by_role(self, x: Any) -> dict[str, Any]:
        """``x`` keyed by role: a policy with one role may return plain arrays."""
        if isinstance(x, dict):
            if set(x) != set(self.roles):
                raise ValueError(
                    f"{type(self).__name__} returned roles {sorted(x)}, declared {sorted(self.roles)}"
                )
            return x
        if len(self.roles) != 1:
            raise ValueError(
                f"{type(self).__name__} has roles {sorted(self.roles)}: return a dict keyed by role"
            )
        return {next(iter(self.roles)): x}

    def param_groups(self, params: Params) -> Any:
        """A pytree like ``params`` of group names; one group, ``"default"``, unless overridden."""
        return jax.tree.map(lambda _: "default", params)

    def group_defaults(self) -> dict[str, GroupConfig]:
        """How the policy's groups are optimised when ``algo.groups`` says nothing."""
        return {}
