"""A vector-quantised symbol channel (VQ-VAE style, van den Oord et al. 2017; the "AI Mother
Tongue" symbol system, Liu 2025): every agent says ``seq_len`` symbols from a codebook of K.

Each agent encodes its features ``h_i`` to ``seq_len`` vectors ``z_e`` (a linear layer), and
each vector is replaced by its nearest codebook vector (Euclidean). The symbol is that code's
index; the message is the code vector with the straight-through gradient ``c + (z_e -
stop_gradient(z_e))`` (exactly ``c`` forward, the identity backward), so the receivers' losses train the sender's encoder. Every agent
hears the messages of all the others (in agent order, its own left out), appended to its
own features before the action head.

- Losses (``aux``, joined to the loss): commitment ``beta * |z_e - sg(c)|^2``, and with
  ``ema=false`` the codebook loss ``codebook_coef * |sg(z_e) - c|^2`` (the codebook is then
  a parameter of the ``comm`` group).
- ``ema=true``: the codebook lives in the method state and follows the exponential moving
  average of the encodings assigned to it (decay ``ema_decay``; Laplace-smoothed usage), as in
  VQ-VAE-2; it moves at every optimiser step, from the minibatch's encodings.
- Dead codes (``ema=true``): a code whose moving-average share of the assignments falls below
  ``restart_threshold`` is restarted at a random encoding of the current minibatch.
- ``normalise=true``: encodings and codes are scaled to unit length before quantising
  (nearest by cosine similarity, as in ViT-VQGAN, Yu et al. 2022), so messages keep their
  size: without it the commitment loss can shrink the encodings and the codes they pull to
  a scale at which receivers hardly tell the symbols apart.
- ``standardise=true``: each dimension of the encodings is shifted and scaled by its running
  mean and standard deviation (bias-corrected moving averages over the update minibatches,
  decay ``ema_decay``; none before the first update) before quantising, so that the
  encodings' spread, not the part they share, chooses the symbol: a remedy for encodings
  that all point one way (an index collapse, which dead-code restarts turn into a codebook
  collapse). Quantisation, the commitment loss and the straight-through gradient then act
  on the standardised encodings; the statistics move after the minibatch's forward pass,
  as the EMA codebook does.
- ``heard=shuffled``: an intervention for evaluation (``commarl-evaluate ...
  comm_options.heard=shuffled``, ``marl.comm.base.heard_elsewhere``): every environment hears
  the symbols sent in another episode.
- ``vq/code_cosine`` (a rollout metric and an evaluation statistic): the mean cosine
  similarity between distinct codes; near 1, the symbols differ while the messages hardly do
  (the codes collapsed onto one direction; a high perplexity does not rule it out).
- Symbols are re-quantised at update time (the channel is deterministic: with the parameters
  and codebook of the rollout the update sends the same symbols, so the PPO ratio is exactly 1
  at the first minibatch). While acting, ``aux["symbols"]`` holds the one-hot symbols ``[...,
  N, seq_len, K]`` (the trainer logs their rollout mean: the codebook usage per agent and
  position; the evaluator records them for ``statistics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from marl.comm.base import check_heard, heard_elsewhere
from marl.comm.symbols import episode_statistics
from marl.config import CommConfig
from marl.networks import dense, rows


@dataclass
class VQConfig(CommConfig):
    name: str = "vq"
    codebook_size: int = 16  # K symbols
    code_dim: int = 8  # D: the size of a code vector
    seq_len: int = 1  # symbols per message
    beta: float = 0.25  # commitment loss weight
    codebook_coef: float = 1.0  # codebook loss weight (ema=false)
    ema: bool = True  # codebook by moving averages (in the method state), not by gradient
    ema_decay: float = 0.99
    restart_threshold: float = 1e-3  # ema: restart codes below this share of assignments; 0: never
    normalise: bool = False  # unit-length encodings and codes (quantise by cosine similarity)
    standardise: bool = False  # encodings standardised by running moments before quantising
    heard: str = "sent"  # sent | shuffled (evaluation only: the next environment's symbols)


def quantise(z_e: jax.Array, codebook: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``z_e [..., D]`` -> (the nearest code's index ``[...]``, its vector ``[..., D]`` with the
    straight-through gradient: exactly the code forward, the identity backward)."""
    d2 = jnp.sum(z_e**2, -1, keepdims=True) - 2 * z_e @ codebook.T + jnp.sum(codebook**2, -1)
    symbols = jnp.argmin(d2, -1)  # [...]
    return symbols, codebook[symbols] + (z_e - jax.lax.stop_gradient(z_e))


def unit(x: jax.Array) -> jax.Array:
    """``x`` scaled to unit length along its last axis."""
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x**2, -1, keepdims=True), 1e-12))


def code_cosine(book: jax.Array) -> jax.Array:
    """The mean cosine similarity between distinct codes of ``book [K, D]``: near 1 when the
    codes point one way, so that the symbols differ but the messages hardly do (a collapse
    that the symbols' perplexity does not show)."""
    k = book.shape[0]
    cosine = unit(book) @ unit(book).T
    return (jnp.sum(cosine) - jnp.trace(cosine)) / (k * (k - 1))


def uniform_codebook(key: jax.Array, shape: tuple[int, int]) -> jax.Array:
    """K x D codes drawn from U(-1/K, 1/K) (the usual VQ-VAE initialisation)."""
    return jax.random.uniform(key, shape, minval=-1 / shape[0], maxval=1 / shape[0])


def standardised(z_e: jax.Array, moments: jax.Array) -> jax.Array:
    """``z_e [..., D]`` shifted and scaled per dimension by ``moments [3, D]`` (moving averages
    of 1, z and z^2, so that dividing by the first removes their bias; unchanged while it is
    still 0)."""
    weight, mean, square = moments
    seen = weight > 0
    mu = jnp.where(seen, mean / jnp.where(seen, weight, 1.0), 0.0)
    var = jnp.where(seen, square / jnp.where(seen, weight, 1.0) - mu**2, 1.0)
    return (z_e - mu) * jax.lax.rsqrt(jnp.maximum(var, 1e-8))


class VQChannel(nn.Module):
    cfg: VQConfig
    num_agents: int

    @nn.compact
    def __call__(self, h: jax.Array, obs, ctx, extras=None):
        c, n = self.cfg, self.num_agents
        k, d = c.codebook_size, c.code_dim
        acting = extras is None
        if c.ema:
            codebook = self.variable(
                "method_state",
                "codebook",
                lambda: uniform_codebook(self.make_rng("params"), (k, d)),
            )
            usage = self.variable("method_state", "usage", lambda: jnp.full((k,), 1.0 / k))
            embed_sum = self.variable("method_state", "embed_sum", lambda: codebook.value / k)
            book = codebook.value
        else:
            book = self.param("codebook", uniform_codebook, (k, d))
        z_e = rows(dense(c.seq_len * d, 1.0), h).reshape(*h.shape[:-1], c.seq_len, d)
        if c.standardise:
            raw = jax.lax.stop_gradient(z_e).reshape(-1, d)  # [M, D]
            moments = self.variable("method_state", "moments", lambda: jnp.zeros((3, d)))
            z_e = standardised(z_e, moments.value)
        if c.normalise:
            z_e, book = unit(z_e), unit(book)
        symbols, z_q = quantise(z_e, book)  # [..., N, L], [..., N, L, D]
        message = z_q.reshape(*h.shape[:-1], c.seq_len * d)  # [..., E, N, L x D]
        message = heard_elsewhere(message, c.heard, acting)
        others = np.array([[j for j in range(n) if j != i] for i in range(n)], np.int32)
        heard = message[..., others, :].reshape(*h.shape[:-1], (n - 1) * c.seq_len * d)
        out = jnp.concatenate([h, heard], -1)
        one_hot = jax.nn.one_hot(symbols, k)  # [..., N, L, K]
        if acting:
            cosine = jnp.broadcast_to(code_cosine(book), h.shape[:-2])  # [...] per step
            return out, {}, {"symbols": one_hot, "vq/code_cosine": cosine}
        flat_e, flat_hot = z_e.reshape(-1, d), one_hot.reshape(-1, k)
        code = jax.lax.stop_gradient(book[symbols])
        aux = {"loss/vq_commit": c.beta * jnp.mean(jnp.sum((z_e - code) ** 2, -1))}
        share = flat_hot.mean(0)  # [K] the batch's share of assignments per code
        if not c.ema:
            codebook_loss = jnp.mean(jnp.sum((jax.lax.stop_gradient(z_e) - book[symbols]) ** 2, -1))
            aux["loss/vq_codebook"] = c.codebook_coef * codebook_loss
        else:
            g = c.ema_decay
            sums = flat_hot.T @ jax.lax.stop_gradient(flat_e) / flat_e.shape[0]  # [K, D]
            new_usage = g * usage.value + (1 - g) * share
            new_sum = g * embed_sum.value + (1 - g) * sums
            smoothed = (new_usage + 1e-5) / (1 + k * 1e-5)
            new_book = new_sum / smoothed[:, None]
            if c.restart_threshold > 0:  # dead codes restart at random encodings of the batch
                dead = new_usage < c.restart_threshold
                pick = jax.random.randint(self.make_rng("comm"), (k,), 0, flat_e.shape[0])
                fresh = jax.lax.stop_gradient(flat_e[pick])
                new_book = jnp.where(dead[:, None], fresh, new_book)
                new_usage = jnp.where(dead, 1.0 / k, new_usage)
                new_sum = jnp.where(dead[:, None], fresh / k, new_sum)
                aux["vq/restarted"] = dead.sum().astype(jnp.float32)
            codebook.value, usage.value, embed_sum.value = new_book, new_usage, new_sum
        if c.standardise:
            batch = jnp.stack([jnp.ones(d), raw.mean(0), (raw**2).mean(0)])  # [3, D]
            moments.value = c.ema_decay * moments.value + (1 - c.ema_decay) * batch
        entropy = -jnp.sum(share * jnp.log(jnp.maximum(share, 1e-12)))
        aux["vq/perplexity"] = jnp.exp(entropy)  # of the minibatch's symbols, all agents
        aux["vq/unused_codes"] = jnp.sum(share == 0).astype(jnp.float32)
        return out, {}, aux

    def statistics(self, episodes) -> dict:
        """Each seed's symbol statistics in the evaluation episodes (``marl.comm.symbols``,
        ``[S, N]`` per statistic), against the environment's ``task/...`` variables, and its
        codebook's ``vq/code_cosine`` ``[S]``."""
        symbols = np.asarray(episodes.aux["symbols"]).argmax(-1)  # [S, T, E, N, L]
        cosine = np.asarray(episodes.aux["vq/code_cosine"])[:, 0, 0]  # [S]: one codebook each
        stats = episode_statistics(symbols, self.cfg.codebook_size, episodes)
        return {**stats, "vq/code_cosine": cosine}


def make_vq(cfg: VQConfig, env) -> VQChannel:
    if min(cfg.codebook_size, cfg.code_dim, cfg.seq_len) < 1 or cfg.codebook_size < 2:
        raise ValueError(
            f"comm: codebook_size >= 2, code_dim >= 1 and seq_len >= 1 are needed, got {cfg}"
        )
    if cfg.beta < 0 or cfg.codebook_coef < 0 or not 0.0 < cfg.ema_decay < 1.0:
        raise ValueError(f"comm: beta, codebook_coef >= 0 and ema_decay in (0, 1), got {cfg}")
    if not 0.0 <= cfg.restart_threshold < 1.0 / cfg.codebook_size:
        raise ValueError(
            f"comm.restart_threshold must be in [0, 1/codebook_size) (a share of the "
            f"assignments), got {cfg.restart_threshold}"
        )
    if cfg.restart_threshold > 0 and not cfg.ema:
        raise ValueError(
            "comm.restart_threshold > 0 needs comm.ema=true (restarts rewrite the codebook, "
            "which must live in the method state); set comm.restart_threshold=0"
        )
    if env.num_agents < 2:
        raise ValueError("comm=vq needs at least 2 agents (someone to hear the symbols)")
    check_heard(cfg.heard)
    return VQChannel(cfg, env.num_agents)
