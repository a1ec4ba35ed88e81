"""PPO pieces: running normalisation statistics, GAE with truncation bootstrap, the loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from marl.config import AlgoConfig

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


def ppo_loss(
    cfg: AlgoConfig,
    log_prob: Array,  # [..., N] under the current parameters
    old_log_prob: Array,
    advantage: Array,
    entropy: Array,
    value: Array,  # [..., N] current critic
    old_value: Array,
    target: Array,
    mask: Array,  # [..., N] float: agent acted (active)
) -> tuple[Array, dict[str, Array]]:
    """Clipped surrogate + (clipped) value loss - entropy bonus, averaged over active agents."""
    if cfg.normalize_advantages:
        mean = masked_mean(advantage, mask)
        std = jnp.sqrt(masked_mean((advantage - mean) ** 2, mask))
        advantage = (advantage - mean) / (std + 1e-8)
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps)
    actor_loss = -masked_mean(jnp.minimum(ratio * advantage, clipped * advantage), mask)
    value_loss = (value - target) ** 2
    if cfg.clip_value:
        value_clipped = old_value + jnp.clip(value - old_value, -cfg.clip_eps, cfg.clip_eps)
        value_loss = jnp.maximum(value_loss, (value_clipped - target) ** 2)
    value_loss = 0.5 * masked_mean(value_loss, mask)
    ent = masked_mean(entropy, mask)
    total = actor_loss + cfg.vf_coef * value_loss - cfg.ent_coef * ent
    return total, {
        "loss/actor": actor_loss,
        "loss/value": value_loss,
        "entropy": ent,
        "approx_kl": masked_mean((ratio - 1) - jnp.log(ratio), mask),
        "clip_frac": masked_mean((jnp.abs(ratio - 1) > cfg.clip_eps).astype(jnp.float32), mask),
    }
