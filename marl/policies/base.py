"""What every policy shares: its input, its action distribution, and its interface."""

from __future__ import annotations

from typing import Any

import distrax
import jax
import jax.numpy as jnp
from flax import struct

from envs.core import TimeStep

Array = jax.Array
Params = Any
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

    - ``init(key, obs) -> params``
    - ``initial_carry(batch_shape) -> carry``
    - ``act(params, carry, obs, key, deterministic) -> (carry, action, log_prob, value, aux)``
    - ``value(params, carry, obs) -> value``: the critic alone (bootstrap on final observations)
    - ``evaluate(params, carry0, obs_seq, action_seq) -> (log_prob, entropy, value, aux)`` over a
      ``[T, B, ...]`` sequence (feed-forward policies accept any leading dims)

    ``value``, ``log_prob``, ``entropy`` are ``[..., N]``. ``aux`` is a dict: entries named
    ``loss/...`` are added to the PPO loss, the rest is logged. ``param_labels`` names
    parameter groups (each may get its own learning rate).
    """

    recurrent: bool = False

    def init(self, key: Array, obs: Observation) -> Params:
        raise NotImplementedError

    def initial_carry(self, batch_shape: tuple[int, ...]) -> Carry:
        raise NotImplementedError

    def act(self, params, carry, obs: Observation, key: Array, deterministic: bool = False):
        raise NotImplementedError

    def value(self, params, carry, obs: Observation) -> Array:
        raise NotImplementedError

    def evaluate(self, params, carry0, obs: Observation, action: Array):
        raise NotImplementedError

    def param_labels(self, params: Params) -> Any:
        """A pytree like ``params`` of group names; one group, ``"default"``, unless overridden."""
        return jax.tree.map(lambda _: "default", params)
