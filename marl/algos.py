"""The update rules: running normalisation statistics, GAE with truncation bootstrap, and the
actor-critic losses of ``algo.name`` (``ALGOS``: ``ppo``, ``a2c``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax
from flax import struct

from marl.config import AlgoConfig, AlgoName, ValueLoss

Array = jax.Array


@struct.dataclass
class RunningStats:
    """Running mean and variance over leading axes (parallel Welford update)."""

    mean: Array  # [...feature shape]
    var: Array
    count: Array  # []

    @classmethod
    def create(cls, shape: tuple[int, ...]) -> RunningStats:
        return cls(jnp.zeros(shape), jnp.ones(shape), jnp.array(1e-4))

    def update(self, x: Array, mask: Array | None = None) -> RunningStats:
        """Fold in ``x [..., *shape]``; ``mask [...]`` selects the samples that count."""
        lead = x.ndim - self.mean.ndim
        w = jnp.ones(x.shape[:lead]) if mask is None else mask.astype(x.dtype)
        w = w.reshape(w.shape + (1,) * self.mean.ndim)
        n = jnp.sum(w)
        axes = tuple(range(lead))
        mean = jnp.sum(w * x, axes) / jnp.maximum(n, 1.0)
        var = jnp.sum(w * (x - mean) ** 2, axes) / jnp.maximum(n, 1.0)
        total = self.count + n
        delta = mean - self.mean
        new_mean = self.mean + delta * n / total
        m2 = self.var * self.count + var * n + delta**2 * self.count * n / total
        return RunningStats(new_mean, m2 / total, total)

    def normalize(self, x: Array) -> Array:
        return (x - self.mean) / jnp.sqrt(self.var + 1e-8)

    def denormalize(self, x: Array) -> Array:
        return x * jnp.sqrt(self.var + 1e-8) + self.mean


def gae(
    reward: Array,  # [T, ...]
    value: Array,  # [T, ...] V(s_t)
    next_value: Array,  # [T, ...] V of the observation after step t (the final one at an end)
    terminal: Array,  # [T, ...] bool: the task ended at t, do not bootstrap
    done: Array,  # [T, ...] bool: the episode ended at t (terminated or truncated)
    gamma: float,
    lam: float,
) -> tuple[Array, Array]:
    """Generalised advantage estimation; returns (advantages, value targets).

    A truncated step bootstraps from ``next_value`` (the value of its final observation); a
    terminal one does not; neither carries advantages across the episode boundary.
    """
    delta = reward + gamma * (1.0 - terminal) * next_value - value

    def step(carry, x):
        delta_t, done_t = x
        adv = delta_t + gamma * lam * (1.0 - done_t) * carry
        return adv, adv

    _, adv = jax.lax.scan(
        step, jnp.zeros_like(delta[0]), (delta, done.astype(delta.dtype)), reverse=True
    )
    return adv, adv + value


def masked_mean(x: Array, mask: Array) -> Array:
    return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def clipped_surrogate(cfg: AlgoConfig, log_prob, old_log_prob, advantage, mask):
    """PPO's actor loss: the clipped probability-ratio surrogate."""
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
    loss = -masked_mean(jnp.minimum(ratio * advantage, clipped * advantage), mask)
    return loss, {
        "approx_kl": masked_mean((ratio - 1) - jnp.log(ratio), mask),
        "clip_frac": masked_mean((jnp.abs(ratio - 1) > cfg.clip_eps).astype(jnp.float32), mask),
    }


def policy_gradient(cfg: AlgoConfig, log_prob, old_log_prob, advantage, mask):
    """A2C's actor loss: -log pi(a) x advantage, no ratio."""
    return -masked_mean(log_prob * advantage, mask), {}


@dataclass(frozen=True)
class Algo:
    actor_loss: Callable[..., tuple[Array, dict[str, Array]]]
    single_pass: bool  # one gradient step per rollout: update_epochs = num_minibatches = 1


ALGOS: dict[str, Algo] = {
    AlgoName.ppo: Algo(clipped_surrogate, single_pass=False),
    AlgoName.a2c: Algo(policy_gradient, single_pass=True),
}


def actor_critic_loss(
    cfg: AlgoConfig,
    ent_coef: Array,  # [] the entropy weight at this update
    log_prob: Array,  # [..., K] under the current parameters
    old_log_prob: Array,
    advantage: Array,
    entropy: Array,
    value: Array,  # [..., K] current critic
    old_value: Array,
    target: Array,
    mask: Array,  # [..., K] float: the unit acted (an active agent)
) -> tuple[Array, dict[str, Array]]:
    """``algo.name``'s actor loss + (clipped) value loss - entropy bonus, over active units."""
    if cfg.normalize_advantages:
        mean = masked_mean(advantage, mask)
        std = jnp.sqrt(masked_mean((advantage - mean) ** 2, mask))
        advantage = (advantage - mean) / (std + 1e-8)
    actor_loss, metrics = ALGOS[cfg.name].actor_loss(cfg, log_prob, old_log_prob, advantage, mask)

    def error(v):
        if cfg.value_loss == ValueLoss.huber:
            return optax.huber_loss(v, target, delta=cfg.huber_delta)
        return 0.5 * (v - target) ** 2

    value_loss = error(value)
    if cfg.clip_value:
        clipped = old_value + jnp.clip(value - old_value, -cfg.clip_eps, cfg.clip_eps)
        value_loss = jnp.maximum(value_loss, error(clipped))
    value_loss = masked_mean(value_loss, mask)
    ent = masked_mean(entropy, mask)
    total = actor_loss + cfg.vf_coef * value_loss - ent_coef * ent
    return total, {"loss/actor": actor_loss, "loss/value": value_loss, "entropy": ent, **metrics}
