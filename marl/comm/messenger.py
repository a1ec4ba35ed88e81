"""HAMMER's central messenger (Gupta et al., 2021): one agent that sees every local agent's
input at once and sends each of them its own ``meslen``-dim message.

An MLP encoder runs on the concatenated inputs ``[..., N * D]`` and a linear decoder per agent
(one ``N * meslen`` layer) gives the messages. ``comm.mode``:

- ``learned`` (HAMMER v2): the message is a differentiable function of all inputs; each local
  agent's actor loss backpropagates into the messenger.
- ``dru`` (v3): ``learned`` through DIAL's discretise/regularise unit: ``sigmoid(m + sigma *
  eps)`` in training, with ``eps`` drawn while acting and stored with the step (the update
  replays it: the PPO ratio stays exact); ``1[m > 0]`` in evaluation episodes (DIAL's
  discretisation at execution time).
- ``random``: uniform ``[0, 1)`` messages drawn each step (stored), independent of inputs.
- ``rl`` (v1): the messenger is a learner of its own, a Gaussian policy over all ``N x
  meslen`` message values (std fixed, or learned with ``learn_std``) with its own critic on
  the same inputs; the ``hammer`` policy trains it as the team-level role ``messenger`` on the
  team-mean reward. Local agents hear the sampled message as an input (no gradient).

``heard=shuffled``: an intervention for evaluation (``commarl-evaluate ...
comm_options.heard=shuffled``, ``marl.comm.base.heard_elsewhere``): every environment hears the
messages sent in another episode.

Inside ``policy=hammer`` the local agents act on ``[own input ‖ message]`` and their critics
hear the message stop-gradient. As a plain channel of the IPPO/MAPPO networks (``comm=messenger``
with ``policy=ippo|mappo``, modes ``learned|dru|random``) the messenger reads every agent's
encoder features and the message is appended to them before the action head.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from marl.comm.base import check_heard, heard_elsewhere
from marl.config import NON_NEGATIVE, WIDTHS, Activation, CommConfig, domain
from marl.networks import MLP, dense, rows


class MessengerMode(StrEnum):
    learned = "learned"
    dru = "dru"
    random = "random"
    rl = "rl"


@dataclass
class MessengerConfig(CommConfig):
    name: str = "messenger"
    mode: MessengerMode = MessengerMode.learned
    meslen: int = field(
        default=1, metadata=domain(NON_NEGATIVE)
    )  # message size per agent; 0: no message, no messenger (independent learners)
    hidden: list[int] = field(default_factory=lambda: [64, 64], metadata=WIDTHS)  # encoder
    activation: Activation = Activation.relu
    dru_sigma: float = 2.0  # dru: std of the training noise
    message_std: float = 0.5  # rl: the Gaussian's std (its initial value if learn_std)
    learn_std: bool = False  # rl
    # policy=hammer: the messenger also sees every agent's previous action (the reference's
    # input on multiwalker)
    sees_actions: bool = False
    heard: str = "sent"  # sent | shuffled (evaluation only: another episode's messages)


class Learner(NamedTuple):
    """The ``rl`` messenger's outputs as a team-level learner, ``[..., 1]`` each."""

    log_prob: jax.Array
    entropy: jax.Array
    value: jax.Array


class Sent(NamedTuple):
    message: jax.Array  # [..., N, meslen]
    extras: Any  # to store with the step (random draws, DRU noise, sampled messages)
    aux: dict  # while acting, ``message`` [..., N, meslen] (a step metric; recorded in evaluation)
    learner: Learner | None  # rl mode only


class Messenger(nn.Module):
    cfg: MessengerConfig
    num_agents: int

    @nn.compact
    def send(self, x: jax.Array, ctx, extras=None, deterministic: bool = False) -> Sent:
        """Messages for every agent from all agents' inputs ``x [..., N, D]`` (the ``hammer``
        policy appends previous actions if ``sees_actions``); ``extras`` is ``None`` while
        acting and what was stored at update time."""
        c, n = self.cfg, self.num_agents
        shape = (*x.shape[:-2], n, c.meslen)
        acting = extras is None
        if c.meslen == 0:  # nothing to say: independent learners
            return Sent(jnp.zeros(shape), {}, {}, None)
        if c.mode == MessengerMode.random:
            if acting:
                extras = jax.random.uniform(self.make_rng("comm"), shape)
            heard = heard_elsewhere(extras, c.heard, acting)
            return Sent(heard, extras, {"message": extras} if acting else {}, None)
        joint = x.reshape(*x.shape[:-2], -1)  # [..., N * D]
        m = rows(dense(n * c.meslen, 1.0), MLP(c.hidden, c.activation)(joint)).reshape(shape)
        learner = None
        if c.mode == MessengerMode.learned:
            message, extras = m, {}
        elif c.mode == MessengerMode.dru:
            if not ctx.training:
                extras = jnp.zeros_like(m)
                message = (m > 0).astype(m.dtype)
            else:
                if acting:
                    extras = jax.random.normal(self.make_rng("comm"), shape)
                message = jax.nn.sigmoid(m + c.dru_sigma * extras)
        else:  # rl: a Gaussian policy over all N x meslen values, with its own critic
            init = nn.initializers.constant(np.log(c.message_std))
            log_std = self.param("log_std", init, (c.meslen,)) if c.learn_std else None
            std = jnp.exp(log_std) if c.learn_std else c.message_std
            dist = distrax.Normal(m, jnp.broadcast_to(std, shape))
            if acting:
                extras = m if deterministic else dist.sample(seed=self.make_rng("comm"))
            message = jax.lax.stop_gradient(extras)
            value = rows(dense(1, 1.0), MLP(c.hidden, c.activation, name="critic")(joint))
            log_prob = dist.log_prob(message).sum((-2, -1))[..., None]  # [..., 1]
            learner = Learner(log_prob, dist.entropy().sum((-2, -1))[..., None], value)
        aux = {"message": message} if acting else {}  # what was sent
        return Sent(heard_elsewhere(message, c.heard, acting), extras, aux, learner)

    def __call__(self, h: jax.Array, obs, ctx, extras=None):
        """As a channel of the MLP networks: every agent's features plus its message."""
        if self.cfg.mode == MessengerMode.rl or self.cfg.sees_actions:
            raise ValueError("comm.mode=rl (a learner) and comm.sees_actions need policy=hammer")
        sent = self.send(h, ctx, extras)
        return jnp.concatenate([h, sent.message], -1), sent.extras, sent.aux

    def statistics(self, episodes) -> dict:
        """The evaluation episodes' messages, per seed then averaged over seeds: each agent's
        message mean and variance ``[N, meslen]``, and ``message/probe_r2`` ``[N]``: how well
        a linear (ridge) probe from all agents' observations predicts each agent's message,
        fitted on alternate steps and scored on the others (about 0 or below for messages
        that ignore the observations, 1 for a linear code; NaN for a constant message)."""
        if self.cfg.meslen == 0:
            return {}
        valid = np.asarray(episodes.valid)  # [S, T, E]
        message = np.asarray(episodes.aux["message"], np.float64)  # [S, T, E, N, meslen]
        obs = np.asarray(episodes.obs.obs, np.float64)  # [S, T, E, N, D]
        per_seed = [
            message_stats(m[v], o[v].reshape(int(v.sum()), -1))
            for m, o, v in zip(message, obs, valid, strict=True)
        ]
        with warnings.catch_warnings():  # a seed with a constant message has NaN R²
            warnings.simplefilter("ignore", RuntimeWarning)
            return {k: np.nanmean([s[k] for s in per_seed], 0) for k in per_seed[0]}


def message_stats(message: np.ndarray, obs: np.ndarray) -> dict[str, np.ndarray]:
    """``message [K, N, L]`` and the observations ``[K, D]`` at the same K steps."""
    k, n, dim = message.shape
    stats = {"message/mean": message.mean(0), "message/var": message.var(0)}
    fit, test = slice(0, None, 2), slice(1, None, 2)
    mean, std = obs[fit].mean(0), obs[fit].std(0) + 1e-6
    x = np.concatenate([(obs - mean) / std, np.ones((k, 1))], 1)  # standardised, with a bias
    y = message.reshape(k, -1)
    w = np.linalg.solve(x[fit].T @ x[fit] + np.eye(x.shape[1]), x[fit].T @ y[fit])  # ridge 1
    error = ((x[test] @ w - y[test]) ** 2).reshape(-1, n, dim).sum((0, 2))
    spread = ((y[test] - y[test].mean(0)) ** 2).reshape(-1, n, dim).sum((0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        stats["message/probe_r2"] = np.where(spread > 1e-9, 1.0 - error / spread, np.nan)
    return stats


def make_messenger(cfg: MessengerConfig, env) -> Messenger:
    if cfg.meslen < 0 or cfg.dru_sigma < 0 or cfg.message_std <= 0:
        raise ValueError(
            f"comm: meslen >= 0, dru_sigma >= 0 and message_std > 0 are needed, got {cfg}"
        )
    check_heard(cfg.heard)
    if cfg.mode == MessengerMode.rl and cfg.meslen == 0:
        raise ValueError("comm.mode=rl needs comm.meslen >= 1 (the messenger's action)")
    return Messenger(cfg, env.num_agents)
