"""CommFormer's policy (Hu et al., ICLR 2024): a MAT-style encoder-decoder whose attention runs
over a learned communication graph (``comm=graph``, ``marl/comm/graph.py``).

- Encoder: ``LN(obs) -> Dense -> GELU -> LN``, then ``n_block`` post-LN graph-attention
  layers (ReLU feed-forward); agent ``i`` attends to its senders in the graph. A value head
  on each agent's representation gives per-agent values (no global state, as the reference).
- Decoder, autoregressive over agents: agent ``i`` starts from its encoder representation
  and attends to a start token and to the actions of the agents ``j < i`` it hears
  (``graph[i, j]``); ``act`` samples agent by agent, ``evaluate`` feeds the taken actions
  (teacher forcing). The same straight-through graph weights the decoder's attention.
- Variants: ``comm=graph`` (sparse, learned), ``comm=graph comm.mode=dense`` (full
  communication), ``comm=none`` (each agent hears only itself: no communication).
- ``comm.heard=shuffled`` (evaluation only): each agent attends to itself in its own
  environment, and to its senders' representations and actions in the next environment of
  the batch.

Choices: the decoder's action token ``j`` is agent ``j``'s own action (MAT shifts the sequence,
so an agent's own slot carries its predecessor's action; here the graph says whose actions an
agent hears, and with no edges it hears none); heads are shared by the agents (the reference's
``dec_actor`` heads are per agent); dropout (``dropout > 0``) acts in the encoder, its keep
masks drawn while acting and stored with the step, so the update replays them; continuous
actions have a state-independent ``exp(log_std)``, starting at ``exp(log_std_init)`` = 1, as the
other policies here (the reference's standard deviation is ``0.5 sigmoid(p)``, p starting at 1:
0.37, never above 0.5).

Initialisation as the reference's: attention and feed-forward weights N(0, 0.02), the layers
before a GELU orthogonal with ReLU's gain, the heads' last layers orthogonal with gain 0.01 (so
that the first actions' means and the first values are near zero; before 2026-12-05 flax's
defaults, with which a cable team barely learned: ``experiments/cable_load/README.md``).

Parameter groups: ``edges`` (the graph's logits) and ``model`` (everything else, the gate
included), on the bi-level schedule of ``Graph.group_defaults``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from envs.core import AgentSpaces
from marl.comm import NoChannel
from marl.comm.base import heard_elsewhere
from marl.comm.graph import NEG, Graph, GraphConfig, GraphMode
from marl.config import WIDTHS, PolicyConfig
from marl.networks import dense
from marl.policies.base import Acted, ActionDist, ActorCritic, Context, Evaluated


def small(features: int, name: str) -> nn.Dense:
    """A dense layer of the attention or the feed-forward: weights N(0, 0.02), as the reference."""
    return nn.Dense(features, kernel_init=nn.initializers.normal(0.02), name=name)


@dataclass
class CommFormerConfig(PolicyConfig):
    name: str = "commformer"
    n_embd: int = field(default=64, metadata=WIDTHS)
    n_head: int = field(default=1, metadata=WIDTHS)
    n_block: int = field(default=1, metadata=WIDTHS)
    dropout: float = 0.0  # encoder dropout (the reference: 0.1)
    log_std_init: float = 0.0  # continuous actions: state-independent log-std


class GraphAttention(nn.Module):
    """Relation-enhanced multi-head attention whose softmax weights are multiplied by the
    graph: ``x [..., R, E]`` attends to ``kv [..., S, E]`` where ``mask [..., R, S] != 0``.

    The score of ``(i, j)`` is ``(q_i + a_ij) . (k_j + b_ij) / sqrt(head_dim)`` with
    ``(a_ij, b_ij)`` a projection of the embedding of ``relation[i, j]`` (0 or 1); as a
    relation takes two values, the score is assembled from ``q_i . k_j`` and the dot products
    with the two projected embeddings instead of per-pair vectors."""

    n_embd: int
    n_head: int

    @nn.compact
    def __call__(self, x, kv, mask, relation):
        e, h = self.n_embd, self.n_head
        d = e // h
        q = small(e, "query")(x).reshape(*x.shape[:-1], h, d)  # [..., R, H, d]
        k = small(e, "key")(kv).reshape(*kv.shape[:-1], h, d)  # [..., S, H, d]
        v = small(e, "value")(kv).reshape(*kv.shape[:-1], h, d)
        table = nn.Embed(2, e, name="relation_embed")(jnp.arange(2))  # [2, E]
        a, b = jnp.split(small(2 * e, "relation")(table).reshape(2, 2, h, d), 2, 1)
        a, b = a[:, 0], b[:, 0]  # [2 relations, H, d]
        one_hot = jax.nn.one_hot(relation, 2)  # [..., R, S, 2]
        per_relation = (
            jnp.einsum("...rhd,thd->...rht", q, b)[..., :, None, :, :]  # q_i . b
            + jnp.einsum("thd,...shd->...sht", a, k)[..., None, :, :, :]  # a . k_j
            + jnp.einsum("thd,thd->ht", a, b)  # a . b
        )  # [..., R, S, H, 2]
        scores = jnp.einsum("...rhd,...shd->...rsh", q, k)
        scores = (scores + jnp.einsum("...rsht,...rst->...rsh", per_relation, one_hot)) / np.sqrt(d)
        connected = (jax.lax.stop_gradient(mask) != 0)[..., None]  # [..., R, S, 1]
        weights = jax.nn.softmax(jnp.where(connected, scores, NEG), -2) * mask[..., None]
        out = jnp.einsum("...rsh,...shd->...rhd", weights, v).reshape(*x.shape[:-1], e)
        return small(e, "out")(out)


class Block(nn.Module):
    """Post-LN transformer layer: graph attention then a ReLU feed-forward, each residual.
    ``keep [..., 2, R, E]``: dropout keep masks (scaled), or ``None``."""

    n_embd: int
    n_head: int

    @nn.compact
    def __call__(self, x, kv, mask, relation, keep=None):
        y = GraphAttention(self.n_embd, self.n_head, name="attention")(x, kv, mask, relation)
        if keep is not None:
            y = y * keep[..., 0, :, :]
        x = nn.LayerNorm(name="ln_attention")(x + y)
        y = small(self.n_embd, "ff_out")(nn.relu(small(self.n_embd, "ff_in")(x)))
        if keep is not None:
            y = y * keep[..., 1, :, :]
        return nn.LayerNorm(name="ln_ff")(x + y)


def heard_senders(mask, relation, heard: str, acting: bool):
    """The encoder's attention as heard: ``(senders, mask, relation)``, ``senders(x [..., N, E])``
    the tokens attended to. ``shuffled`` attends to ``[x, x of the next environment]``
    ``[..., 2N, E]``: each agent's own slot is open in the first half, its senders' in the
    second (``heard_elsewhere``), so the attention weights are those of the graph."""
    if heard == "sent":
        return (lambda x: x), mask, relation
    eye = jnp.eye(mask.shape[-1])
    both = lambda x: jnp.concatenate([x, heard_elsewhere(x, heard, acting)], -2)  # noqa: E731
    mask = jnp.concatenate([mask * eye, mask * (1.0 - eye)], -1)  # [..., N, 2N]
    return both, mask, jnp.concatenate([relation, relation], -1)


def head(e: int, out: int, name: str) -> nn.Sequential:
    """The value and action heads; their outputs start near zero, as the reference's."""
    return nn.Sequential([dense(e), nn.gelu, nn.LayerNorm(), dense(out, 0.01)], name=name)


class CommFormerNet(nn.Module):
    cfg: CommFormerConfig
    graph: Graph
    action_dim: int
    discrete: bool

    def setup(self):
        c, e = self.cfg, self.cfg.n_embd
        self.obs_in = nn.Sequential([nn.LayerNorm(), dense(e), nn.gelu, nn.LayerNorm()])
        self.encoder = [Block(e, c.n_head, name=f"encoder_{b}") for b in range(c.n_block)]
        self.value_head = head(e, 1, "value_head")
        self.action_in = nn.Sequential([dense(e), nn.gelu])
        self.start = self.param("start", nn.initializers.normal(0.02), (e,))
        self.decoder = [Block(e, c.n_head, name=f"decoder_{b}") for b in range(c.n_block)]
        self.action_head = head(e, self.action_dim, "action_head")
        if not self.discrete:
            self.log_std = self.param(
                "log_std", nn.initializers.constant(c.log_std_init), (self.action_dim,)
            )

    def encode(self, obs, ctx, extras=None, sample=False):
        """-> (rep [..., N, E], value [..., N], decoder mask and relation [..., N, N + 1],
        extras to store, aux)."""
        mask, relation, stored, aux = self.graph.mask(obs, ctx, extras, sample)
        keep = None
        if self.cfg.dropout > 0:
            if extras is not None:
                keep = extras["dropout"]
            elif sample:
                shape = (*obs.shape[:-2], self.cfg.n_block, 2, obs.shape[-2], self.cfg.n_embd)
                bits = jax.random.bernoulli(self.make_rng("comm"), 1 - self.cfg.dropout, shape)
                keep = bits / (1 - self.cfg.dropout)
            if keep is not None:
                stored = {**stored, "dropout": keep}
        x = self.obs_in(obs)
        senders, kv_mask, kv_relation = heard_senders(
            mask, relation, self.graph.cfg.heard, extras is None
        )
        for b, block in enumerate(self.encoder):
            keep_b = None if keep is None else keep[..., b, :, :, :]
            x = block(x, senders(x), kv_mask, kv_relation, keep_b)
        value = self.value_head(x)[..., 0]
        n = obs.shape[-2]
        # Agent i hears the start token and the actions of the agents j < i it listens to.
        heard = mask * jnp.tril(jnp.ones((n, n)), -1)
        dec_mask = jnp.concatenate([jnp.ones((*heard.shape[:-1], 1)), heard], -1)
        dec_relation = (jax.lax.stop_gradient(dec_mask) != 0).astype(jnp.int32)
        return x, value, dec_mask, dec_relation, stored, aux

    def embed_actions(self, action):
        """Actions ``[..., K]`` ints or ``[..., K, A]`` floats -> tokens ``[..., K, E]``."""
        x = jax.nn.one_hot(action, self.action_dim) if self.discrete else action
        return self.action_in(x)

    def decode(self, rep, tokens, dec_mask, dec_relation):
        """Rows ``rep [..., R, E]`` with their masks ``[..., R, N + 1]`` over the start token
        and the action tokens ``[..., N, E]`` -> action logits or means ``[..., R, A]``."""
        start = jnp.broadcast_to(self.start, (*tokens.shape[:-2], 1, tokens.shape[-1]))
        kv = jnp.concatenate([start, tokens], -2)
        x = rep
        for block in self.decoder:
            x = block(x, kv, dec_mask, dec_relation)
        return self.action_head(x)

    def __call__(self, obs, ctx, action):
        """Initialises every parameter: encode, then decode with teacher forcing."""
        rep, value, dec_mask, dec_relation, _, _ = self.encode(obs, ctx)
        return self.decode(rep, self.embed_actions(action), dec_mask, dec_relation), value


class CommFormerPolicy(ActorCritic):
    def __init__(self, cfg: CommFormerConfig, env: AgentSpaces, channel, num_updates: int):
        if cfg.n_embd % cfg.n_head or min(cfg.n_embd, cfg.n_head, cfg.n_block) < 1:
            raise ValueError(
                f"policy: n_embd ({cfg.n_embd}) must be a positive multiple of n_head "
                f"({cfg.n_head}) and n_block >= 1, got n_block={cfg.n_block}"
            )
        if not 0.0 <= cfg.dropout < 1.0:
            raise ValueError(f"policy.dropout must be in [0, 1), got {cfg.dropout}")
        if isinstance(channel, NoChannel):
            channel = Graph(GraphConfig(), env.num_agents, communicate=False)
        elif not isinstance(channel, Graph):
            raise ValueError("policy=commformer hears comm=graph or comm=none")
        self.graph = channel
        self.sparse = channel.communicate and channel.cfg.mode == GraphMode.sparse
        self.discrete, self.action_dim, self.n = env.discrete, env.action_dim, env.num_agents
        self.net = CommFormerNet(cfg, channel, env.action_dim, env.discrete)
        self.cfg = cfg

    def init(self, key, obs):
        action = jnp.zeros(obs.active.shape, jnp.int32)
        if not self.discrete:
            action = jnp.zeros((*obs.active.shape, self.action_dim))
        variables = self.net.init({"params": key}, obs.obs, Context.at(0, 1), action)
        params = {"params": variables["params"]}
        if not self.sparse:
            return params, {}
        return params, {"topk": self.graph.topk(params["params"]["graph"]["edges"])}

    def initial_carry(self, batch_shape):
        return jnp.zeros((*batch_shape, 1))  # feed-forward; Orbax saves no empty arrays

    def param_groups(self, params):
        def label(path, _):
            return "edges" if any(getattr(p, "key", None) == "edges" for p in path) else "model"

        return jax.tree_util.tree_map_with_path(label, params)

    def group_defaults(self):
        return self.graph.group_defaults("model") if self.sparse else {}

    def _dist(self, params, out, mask):
        log_std = None if self.discrete else params["params"]["log_std"]
        return ActionDist(out, mask, self.discrete, log_std)

    def act(self, params, method_state, carry, obs, key, ctx, deterministic=False) -> Acted:
        k_comm, k_act = jax.random.split(key)
        sample = ctx.training and not deterministic
        rep, value, dec_mask, dec_rel, extras, aux = self.net.apply(
            params, obs.obs, ctx, None, sample, method="encode", rngs={"comm": k_comm}
        )
        tokens = jnp.zeros((*rep.shape[:-1], self.cfg.n_embd))

        def decide(tokens, i):  # agent i, having heard the actions of the agents before it
            row = lambda x: jax.lax.dynamic_slice_in_dim(x, i, 1, -2)  # noqa: E731
            heard = heard_elsewhere(tokens, self.graph.cfg.heard, True)  # the others' actions
            out = self.net.apply(
                params, row(rep), heard, row(dec_mask), row(dec_rel), method="decode"
            )[..., 0, :]
            dist = self._dist(params, out, jnp.take(obs.action_mask, i, -2))
            action = dist.mode() if deterministic else dist.sample(jax.random.fold_in(k_act, i))
            one = action[..., None] if self.discrete else action[..., None, :]  # K = 1 agent
            token = self.net.apply(params, one, method="embed_actions")
            tokens = jax.lax.dynamic_update_slice_in_dim(tokens, token, i, -2)
            return tokens, (action, dist.log_prob(action))

        _, (action, log_prob) = jax.lax.scan(decide, tokens, jnp.arange(self.n))
        action = jnp.moveaxis(action, 0, obs.active.ndim - 1)  # [N, ...] -> [..., N(, A)]
        return Acted(carry, action, jnp.moveaxis(log_prob, 0, -1), value, extras, aux)

    def value(self, params, method_state, carry, obs, key, ctx):
        return self.net.apply(params, obs.obs, ctx, method="encode")[1]

    def evaluate(self, params, method_state, carry0, obs, action, extras, key, ctx) -> Evaluated:
        rep, value, dec_mask, dec_rel, _, aux = self.net.apply(
            params, obs.obs, ctx, extras, method="encode"
        )
        tokens = self.net.apply(params, action, method="embed_actions")
        out = self.net.apply(params, rep, tokens, dec_mask, dec_rel, method="decode")
        dist = self._dist(params, out, obs.action_mask)
        aux = {k: v.mean() if k == "gate_open" else v for k, v in aux.items()}
        if self.sparse:
            edges = params["params"]["graph"]["edges"]
            aux = {**aux, **self.graph.diagnostics(edges)}
            topk = self.graph.topk(edges)
            changed = jnp.any(topk != method_state["topk"], -1).sum().astype(jnp.float32)
            aux["graph/rows_changed"] = changed  # since the previous optimiser step
            method_state = {"topk": topk}
        return Evaluated(dist.log_prob(action), dist.entropy(), value, method_state, aux)
