"""AI Mother Tongue (Liu 2025, arXiv 2507.10566): two agents that speak in symbol sequences,
on the contextual Prisoner's Dilemma (``games/contextual_pd``).

- A VQ-VAE (encoder MLP -> D, a codebook of K, decoder MLP -> sigmoid pixels; reconstruction
  MSE + ``beta`` commitment + codebook loss, straight-through) is pretrained on the game's
  images before RL (``pretrain``, run by the trainer at initialisation) and then frozen: it
  lives in the method state, which the optimiser never sees, and is checkpointed with it.
- Agent A (agent 0) reads ``[z_e(image), label embedding]`` and samples ``seq_len`` symbols
  from K; agent B (agent 1) reads A's symbols (its own embedding of them), the label and
  ``z_e`` and answers with its own sequence. A symbol sequence is the agent's move by its
  first symbol: below K/2 cooperate, otherwise defect (the env's action).
- One critic, A's centralised one, on ``[z_e, label, embedding of B's symbols]``, gives both
  agents' values (the reference's shared advantage ``R - V_A``).
- ``reflection``: the reference's auxiliary losses (weight ``reflection_coef``): A predicts
  its own move from its symbols, B decodes A's move from A's symbols, and each predicts the
  other's symbols (cross-entropy).

The observation is ``[image pixels, label one-hot (label_dim)]``. Choices: the VQ-VAE has the
straight-through estimator the reference lacks; each agent's loss is the mean over the two
agents, i.e. the reference's losses halved, which leaves Adam's steps unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from envs.core import AgentSpaces
from marl.comm.symbols import episode_statistics
from marl.comm.vq import quantise, uniform_codebook
from marl.config import GroupConfig, PolicyConfig
from marl.policies.base import Acted, ActorCritic, Evaluated


@dataclass
class AIMConfig(PolicyConfig):
    name: str = "aim"
    codebook_size: int = 32  # K: symbols (and VQ-VAE codes)
    code_dim: int = 64  # D
    seq_len: int = 2  # symbols per message
    label_dim: int = 10  # the observation's trailing one-hot context
    label_embed: int = 8
    hidden: int = 128  # the policy MLPs
    critic_hidden: int = 256
    # A's critic also hears B's symbols (the reference). Its value then depends on B's move,
    # so B's advantage R - V carries little of B's own effect; false: a state-only baseline.
    critic_hears_b: bool = True
    reflection: bool = True  # the intent and opponent-prediction losses
    reflection_coef: float = 0.05
    reflection_hidden: int = 64
    vqvae_hidden: int = 512
    beta: float = 0.25  # VQ-VAE commitment weight
    pretrain_steps: int = 300  # Adam steps on image batches (about 10 epochs of the digits)
    pretrain_batch: int = 64
    pretrain_lr: float = 1e-3


class VQVAE(nn.Module):
    cfg: AIMConfig
    pixels: int

    def setup(self):
        c = self.cfg
        self.encoder = nn.Sequential([nn.Dense(c.vqvae_hidden), nn.relu, nn.Dense(c.code_dim)])
        self.codebook = self.param("codebook", uniform_codebook, (c.codebook_size, c.code_dim))
        self.decoder = nn.Sequential(
            [nn.Dense(c.vqvae_hidden), nn.relu, nn.Dense(self.pixels), nn.sigmoid]
        )

    def encode(self, x):
        return self.encoder(x)

    def __call__(self, x):
        """-> (reconstruction MSE, commitment, codebook loss)."""
        z_e = self.encoder(x)
        symbols, z_q = quantise(z_e, self.codebook)
        code = self.codebook[symbols]
        return (
            jnp.mean((self.decoder(z_q) - x) ** 2),
            jnp.mean((z_e - jax.lax.stop_gradient(code)) ** 2),
            jnp.mean((jax.lax.stop_gradient(z_e) - code) ** 2),
        )


def move(symbols, k: int):
    """The game's move from a symbol sequence ``[..., L]``: its first symbol's half of the K
    symbols, 0 (cooperate) below K/2, else 1 (defect). NumPy or JAX arrays."""
    return (symbols[..., 0] >= k // 2).astype(np.int32)


def mlp(hidden: int, out: int, name: str) -> nn.Sequential:
    return nn.Sequential([nn.Dense(hidden), nn.relu, nn.Dense(out)], name=name)


class AIMNet(nn.Module):
    cfg: AIMConfig

    def setup(self):
        c = self.cfg
        k, out = c.codebook_size, c.seq_len * c.codebook_size
        self.label_a = nn.Embed(c.label_dim, c.label_embed)
        self.label_b = nn.Embed(c.label_dim, c.label_embed)
        self.symbols_a = nn.Embed(k, c.code_dim)  # A's: B's symbols (critic), its own (reflection)
        self.symbols_b = nn.Embed(k, c.code_dim)  # B's embedding of A's symbols
        self.policy_a, self.policy_b = (
            mlp(c.hidden, out, "policy_a"),
            mlp(c.hidden, out, "policy_b"),
        )
        self.critic = mlp(c.critic_hidden, 1, "critic")
        if c.reflection:
            h = c.reflection_hidden
            self.intent_a, self.intent_b = mlp(h, 2, "intent_a"), mlp(h, 2, "intent_b")
            self.predict_a, self.predict_b = mlp(h, out, "predict_a"), mlp(h, out, "predict_b")

    def _seq(self, logits):
        return logits.reshape(*logits.shape[:-1], self.cfg.seq_len, self.cfg.codebook_size)

    def inputs(self, z_e, label):
        """-> A's input, B's input before A's symbols (each ``[..., D + E]``)."""
        return (
            jnp.concatenate([z_e, self.label_a(label)], -1),
            jnp.concatenate([z_e, self.label_b(label)], -1),
        )

    def logits_a(self, x_a):
        return self._seq(self.policy_a(x_a))  # [..., L, K]

    def heard_by_b(self, x_b, symbols_a):
        flat = self.symbols_b(symbols_a).reshape(*symbols_a.shape[:-1], -1)  # [..., L * D]
        return jnp.concatenate([flat, x_b], -1)

    def logits_b(self, x_b, symbols_a):
        return self._seq(self.policy_b(self.heard_by_b(x_b, symbols_a)))

    def value(self, x_a, symbols_b):
        if not self.cfg.critic_hears_b:
            return self.critic(x_a)[..., 0]
        flat = self.symbols_a(symbols_b).reshape(*symbols_b.shape[:-1], -1)
        return self.critic(jnp.concatenate([x_a, flat], -1))[..., 0]

    def reflection(self, x_a, x_b, symbols_a, symbols_b):
        """The reference's auxiliary cross-entropies: (A's own intent, B's decoding of A's
        intent, A's prediction of B's symbols, B's prediction of A's symbols)."""
        c = self.cfg
        own = jnp.concatenate(
            [
                self.symbols_a(symbols_a).reshape(*symbols_a.shape[:-1], -1),
                x_a[..., -c.label_embed :],
            ],
            -1,
        )
        heard = self.heard_by_b(x_b, symbols_a)
        move_a = move(symbols_a, c.codebook_size)
        ce = optax.softmax_cross_entropy_with_integer_labels
        return (
            ce(self.intent_a(own), move_a).mean(),
            ce(self.intent_b(heard), move_a).mean(),
            ce(self._seq(self.predict_a(own)), symbols_b).mean(),
            ce(self._seq(self.predict_b(heard)), symbols_a).mean(),
        )

    def __call__(self, z_e, label, symbols):
        """Initialises every parameter."""
        x_a, x_b = self.inputs(z_e, label)
        out = (
            self.logits_a(x_a),
            self.logits_b(x_b, symbols[..., 0, :]),
            self.value(x_a, symbols[..., 1, :]),
        )
        if self.cfg.reflection:
            out += self.reflection(x_a, x_b, symbols[..., 0, :], symbols[..., 1, :])
        return out


class AIMPolicy(ActorCritic):
    def __init__(self, cfg: AIMConfig, env: AgentSpaces, channel, num_updates: int):
        if env.num_agents != 2 or not env.discrete or env.action_dim != 2:
            raise ValueError(
                "policy=aim plays a two-agent game with two moves (games/contextual_pd), got "
                f"{env.num_agents} agents and {env.action_dim} {'discrete' if env.discrete else 'continuous'} actions"
            )
        if cfg.codebook_size < 2 or cfg.seq_len < 1 or cfg.pretrain_steps < 0:
            raise ValueError(
                f"policy: codebook_size >= 2, seq_len >= 1, pretrain_steps >= 0, got {cfg}"
            )
        self.cfg = cfg
        self.pixels = env.obs_dim - cfg.label_dim
        self.net = AIMNet(cfg)
        self.vqvae = VQVAE(cfg, self.pixels)

    def _split(self, obs):
        """Agent A's observation -> (pixels ``[..., P]``, label ``[...]``)."""
        x = obs.obs[..., 0, :]
        return x[..., : self.pixels], jnp.argmax(x[..., self.pixels :], -1)

    def init(self, key, obs):
        k_net, k_vae = jax.random.split(key)
        pixels, label = self._split(obs)
        z_e = jnp.zeros((*label.shape, self.cfg.code_dim))
        symbols = jnp.zeros((*label.shape, 2, self.cfg.seq_len), jnp.int32)
        params = {"params": self.net.init(k_net, z_e, label, symbols)["params"]}
        vqvae = self.vqvae.init(k_vae, pixels)["params"]
        return params, {"vqvae": vqvae, "vqvae_loss": jnp.full(3, jnp.nan)}

    def pretrain(self, key, params, method_state, sample):
        """Trains the VQ-VAE on batches of images from ``sample(key) -> Observation [E, ...]``
        (fresh episodes); -> (params, method state with the trained VQ-VAE and its final
        losses: reconstruction, commitment, codebook)."""
        c = self.cfg
        optimizer = optax.adam(c.pretrain_lr)

        def loss(vqvae, pixels):
            recon, commit, book = self.vqvae.apply({"params": vqvae}, pixels)
            return recon + c.beta * commit + book, jnp.stack([recon, commit, book])

        def step(carry, key):
            vqvae, opt_state = carry
            obs = jax.vmap(sample)(jax.random.split(key, c.pretrain_batch))  # [B, E, ...]
            pixels = self._split(obs)[0].reshape(-1, self.pixels)[: c.pretrain_batch]
            (_, parts), grads = jax.value_and_grad(loss, has_aux=True)(vqvae, pixels)
            updates, opt_state = optimizer.update(grads, opt_state)
            return (optax.apply_updates(vqvae, updates), opt_state), parts

        vqvae = method_state["vqvae"]
        (vqvae, _), parts = jax.lax.scan(
            step, (vqvae, optimizer.init(vqvae)), jax.random.split(key, c.pretrain_steps)
        )
        last = parts[-1] if c.pretrain_steps else jnp.full(3, jnp.nan)
        return params, {"vqvae": vqvae, "vqvae_loss": last}

    def group_defaults(self):
        return {"default": GroupConfig(clip=False)}  # the reference clips no gradient

    def initial_carry(self, batch_shape):
        return jnp.zeros((*batch_shape, 1))  # feed-forward; Orbax saves no empty arrays

    def _features(self, method_state, obs):
        pixels, label = self._split(obs)
        z_e = self.vqvae.apply({"params": method_state["vqvae"]}, pixels, method="encode")
        return jax.lax.stop_gradient(z_e), label

    def act(self, params, method_state, carry, obs, key, ctx, deterministic=False) -> Acted:
        k_a, k_b = jax.random.split(key)
        z_e, label = self._features(method_state, obs)
        x_a, x_b = self.net.apply(params, z_e, label, method="inputs")
        dist_a = distrax.Categorical(logits=self.net.apply(params, x_a, method="logits_a"))
        sym_a = dist_a.mode() if deterministic else dist_a.sample(seed=k_a)  # [..., L]
        logits_b = self.net.apply(params, x_b, sym_a, method="logits_b")
        dist_b = distrax.Categorical(logits=logits_b)
        sym_b = dist_b.mode() if deterministic else dist_b.sample(seed=k_b)
        symbols = jnp.stack([sym_a, sym_b], -2)  # [..., 2, L]
        log_prob = jnp.stack([dist_a.log_prob(sym_a).sum(-1), dist_b.log_prob(sym_b).sum(-1)], -1)
        value = self.net.apply(params, x_a, sym_b, method="value")
        value = jnp.stack([value, value], -1)
        return Acted(
            carry, move(symbols, self.cfg.codebook_size), log_prob, value, {"symbols": symbols}, {}
        )

    def value(self, params, method_state, carry, obs, key, ctx):
        """A's critic with B's greedy symbols (only a truncation would use it: the game's
        rounds end terminated)."""
        return self.act(params, method_state, carry, obs, key, ctx, deterministic=True).value

    def evaluate(self, params, method_state, carry0, obs, action, extras, key, ctx) -> Evaluated:
        symbols = extras["symbols"]  # [..., 2, L]
        z_e, label = self._features(method_state, obs)
        x_a, x_b = self.net.apply(params, z_e, label, method="inputs")
        dist_a = distrax.Categorical(logits=self.net.apply(params, x_a, method="logits_a"))
        dist_b = distrax.Categorical(
            logits=self.net.apply(params, x_b, symbols[..., 0, :], method="logits_b")
        )
        per_agent = lambda f: jnp.stack(  # noqa: E731
            [f(dist_a, symbols[..., 0, :]), f(dist_b, symbols[..., 1, :])], -1
        )
        log_prob = per_agent(lambda d, s: d.log_prob(s).sum(-1))
        entropy = per_agent(lambda d, s: d.entropy().sum(-1))
        value = self.net.apply(params, x_a, symbols[..., 1, :], method="value")
        aux = {
            "vqvae/" + k: v
            for k, v in zip(
                ("recon", "commit", "codebook"), method_state["vqvae_loss"], strict=True
            )
        }
        if self.cfg.reflection:
            losses = self.net.apply(
                params, x_a, x_b, symbols[..., 0, :], symbols[..., 1, :], method="reflection"
            )
            # the reference's per-agent sums, halved as the actor-critic losses (see above)
            aux["loss/reflection"] = self.cfg.reflection_coef * sum(losses) / 2
        return Evaluated(log_prob, entropy, jnp.stack([value, value], -1), method_state, aux)

    def statistics(self, episodes) -> dict:
        """Each seed's symbol statistics of the evaluation rounds (``marl.comm.symbols``,
        ``[S, 2]`` per statistic) against the label and each agent's own move, and each
        agent's cooperation rate."""
        symbols = np.asarray(episodes.extras["symbols"])  # [S, T, E, 2, L]
        stats = episode_statistics(symbols, self.cfg.codebook_size, episodes)
        cooperate = move(symbols, self.cfg.codebook_size) == 0  # [S, T, E, 2]
        valid = np.asarray(episodes.valid)[..., None]
        stats["cooperate"] = (cooperate & valid).sum((1, 2)) / valid.sum((1, 2))
        return stats
