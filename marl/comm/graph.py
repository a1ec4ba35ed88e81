"""CommFormer's learned communication graph (Hu et al., ICLR 2024) and its temporal gate
(the journal extension), for ``policy=commformer`` (``comm=graph``).

The graph is an ``N x N`` matrix of edge logits (row = receiver, column = sender). Each row
keeps its ``k = max(int(N * sparsity), 1)`` strongest senders. ``mask`` returns the graph a
forward pass uses, ``[..., N, N]`` with the self-loop added; attention multiplies its
softmax weights by it, which is the only gradient path into the edges.

Phases (``ctx``): the first ``warmup`` updates use the raw edges as a dense weighted mask;
then a straight-through top-k, ``hard - stop_gradient(soft) + soft``; once ``post_ratio`` of
training is done (``post_stable``) the exact top-k, and the edge group stops stepping.

Choices on the reference code's pitfalls (``../shared/research/commformer.md``):
1. Flags are plain booleans here (the reference's store_false flags invert their names).
2. Warm-up ends after ``warmup`` updates on every environment (the reference's non-SMAC
   runners never pass the iteration, so it never ends there).
3. The graph is part of the stored step: a training rollout acts on a Gumbel top-k sample
   (``explore``; the Gumbel noise and the sampled graph are stored), the update replays the
   stored graph with the straight-through gradient of ``softmax(edges + stored noise)``, so
   old and new log-probabilities use one graph (the ratio is exactly 1 at the first
   minibatch); evaluation episodes and bootstrap values use the exact top-k.
   ``explore=false`` acts on the exact top-k as the reference's rollouts do.
4. ``self_loop=replace`` (default): ``mask (1 - I) + I``, every agent hears itself with
   weight 1 and picks its ``k`` senders among the others (``candidates``): a slot on itself
   would hear no one, and since the diagonal then gets no gradient, a row that had picked
   itself could never move again; ``add`` is the reference's ``mask + I``, the top-k over
   all ``N`` (diagonal 2 when an agent picks itself: the weights no longer sum to 1).
5. Relation embeddings index ``relation[i, j]`` (receiver, sender) and scores scale by
   ``1 / sqrt(head_dim)`` (the reference transposes and scales by ``1 / head_dim``).
6. Edges start at 1 plus uniform noise of 1e-3, so the first top-k breaks the all-ones tie
   at random per seed (``jax.lax.top_k`` would pick the lowest indices).
7. Shared heads: nothing but the edges ties a trained model to its team size.

Temporal gate (``gate``; the journal gives no code): each agent decides from its own
observation whether to listen at this step: ``g_i`` = straight-through Gumbel-Bernoulli of
``MLP(o_i)`` (the logistic noise drawn while acting is stored), multiplying row ``i``'s
off-diagonal entries; evaluation episodes open the gate where ``MLP(o_i) > 0``. The loss
adds ``gate_coef * max(0, P(open) - gate_budget)``; the open rate is logged.

``heard=shuffled``, an intervention for evaluation (``commarl-evaluate ...
comm_options.heard=shuffled``): every agent attends to itself in its own environment and to its
senders (and their actions) as they are in the next environment of the batch
(``marl/policies/commformer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import flax.linen as nn
import jax
import jax.numpy as jnp

from marl.comm.base import check_heard
from marl.config import CommConfig, GroupConfig


class GraphMode(StrEnum):
    sparse = "sparse"  # learned top-k senders per receiver (CommFormer)
    dense = "dense"  # everyone hears everyone (full communication)


class SelfLoop(StrEnum):
    replace = "replace"  # mask (1 - I) + I
    add = "add"  # mask + I (the reference)


@dataclass
class GraphConfig(CommConfig):
    name: str = "graph"
    mode: GraphMode = GraphMode.sparse
    sparsity: float = 0.4  # k = max(int(N * sparsity), 1) senders per receiver
    warmup: int = 10  # updates on the dense weighted mask (the raw edges)
    post_stable: bool = True  # exact top-k and frozen edges once post_ratio of training is done
    post_ratio: float = 0.5
    explore: bool = True  # training rollouts act on a Gumbel top-k sample (else the exact one)
    tau: float = 1.0  # Gumbel-softmax temperature
    self_loop: SelfLoop = SelfLoop.replace
    edge_lr: float = 1e-4
    bilevel: bool = True  # an epoch steps either the edges or the model
    edge_period: int = 5  # with bilevel: the edges step on epochs e with (e + 1) % period == 0
    gate: bool = False  # temporal gating
    gate_hidden: int = 64
    gate_budget: float = 0.5  # open-gate rate allowed without penalty
    gate_coef: float = 0.1
    heard: str = "sent"  # sent | shuffled (evaluation only: senders of the next environment)


def topk_mask(x: jax.Array, k: int) -> jax.Array:
    """``[..., N]`` -> 1.0 at each row's ``k`` largest entries, else 0."""
    _, index = jax.lax.top_k(x, k)
    return jax.nn.one_hot(index, x.shape[-1]).sum(-2)


def edge_init(key, shape):
    """All ones (the reference) plus uniform noise of 1e-3: a random first top-k."""
    return 1.0 + 1e-3 * jax.random.uniform(key, shape)


NEG = -1e9  # a logit that no top-k picks and no softmax weighs


class Graph(nn.Module):
    """``mask(obs, ctx, extras, sample)`` -> (mask ``[..., N, N]``, relation ``[..., N, N]``
    int (1 where i hears j), extras to store, aux). ``extras`` is ``None`` while acting;
    ``sample``: a training rollout's step (Gumbel top-k and gate noise are drawn)."""

    cfg: GraphConfig
    num_agents: int
    communicate: bool = True  # False: every agent hears only itself (no communication)

    @property
    def k(self) -> int:
        k = max(int(self.num_agents * self.cfg.sparsity), 1)
        return min(k, self.num_agents - 1) if self.cfg.self_loop == SelfLoop.replace else k

    def candidates(self, edges: jax.Array) -> jax.Array:
        """The logits each row's top-k ranks, ``[..., N, N]``: under ``replace`` the diagonal
        at ``NEG`` (every agent hears itself anyway), under ``add`` the edges themselves."""
        if self.cfg.self_loop == SelfLoop.replace:
            return jnp.where(jnp.eye(self.num_agents) > 0, NEG, edges)
        return edges

    def topk(self, edges: jax.Array) -> jax.Array:
        """The exact graph: 1.0 at each row's ``k`` senders, ``[..., N, N]``."""
        return topk_mask(self.candidates(edges), self.k)

    @nn.compact
    def mask(self, obs: jax.Array, ctx, extras=None, sample: bool = False):
        c, n = self.cfg, self.num_agents
        batch, eye = obs.shape[:-2], jnp.eye(n)
        replay = extras is not None
        stored, aux = {}, {}
        if not self.communicate:
            graph = jnp.zeros((*batch, n, n))
        elif c.mode == GraphMode.dense:
            graph = jnp.ones((*batch, n, n))
        else:
            edges = self.param("edges", edge_init, (n, n))
            logits = self.candidates(edges)
            stable = c.post_stable & (ctx.progress >= c.post_ratio)
            if replay:
                noise, hard = extras["noise"], extras["graph"]
            else:
                noise = jnp.zeros((*batch, n, n))
                if sample and c.explore:
                    gumbel = jax.random.gumbel(self.make_rng("comm"), noise.shape)
                    noise = jnp.where(stable, 0.0, gumbel)
                hard = topk_mask(logits + noise, self.k)
            soft = jax.nn.softmax((logits + noise) / c.tau, -1)
            warm = ctx.update < c.warmup
            graph = jnp.where(warm, edges, hard - jax.lax.stop_gradient(soft) + soft)
            stored = {"graph": hard, "noise": noise}
        if c.gate and self.communicate:
            logit = nn.Dense(1, name="gate_out")(
                nn.relu(nn.Dense(c.gate_hidden, name="gate_hidden")(obs))
            )[..., 0]  # [..., N]
            if replay:
                u = extras["gate_noise"]
            elif sample:
                u = jax.random.logistic(self.make_rng("comm"), logit.shape)
            else:
                u = jnp.zeros_like(logit)
            soft = jax.nn.sigmoid((logit + u) / c.tau)
            gate = (logit + u > 0) - jax.lax.stop_gradient(soft) + soft
            graph = graph * jnp.where(eye > 0, 1.0, gate[..., :, None])
            stored["gate_noise"] = u
            aux["gate_open"] = (logit + u > 0).mean(-1)  # [...]
            if replay:
                p_open = jax.nn.sigmoid(logit).mean()
                aux["loss/gate"] = c.gate_coef * jax.nn.relu(p_open - c.gate_budget)
        graph = graph + eye if c.self_loop == SelfLoop.add else graph * (1.0 - eye) + eye
        relation = (jax.lax.stop_gradient(graph) != 0).astype(jnp.int32)
        return graph, relation, stored, aux

    def group_defaults(self, model: str) -> dict[str, GroupConfig]:
        """The bi-level schedule: the edges step on epochs e with (e + 1) % period == 0 at
        ``edge_lr``, unclipped, until ``post_ratio``; ``model`` steps on the others."""
        c, p = self.cfg, self.cfg.edge_period
        stop = c.post_ratio if c.post_stable else 1.0
        edges = GroupConfig(lr=c.edge_lr, clip=False, stop=stop)
        model_group = GroupConfig()
        if c.bilevel:
            edges.epoch_period = model_group.epoch_period = p
            edges.epochs, model_group.epochs = [p - 1], list(range(p - 1))
        return {"edges": edges, model: model_group}

    def diagnostics(self, edges: jax.Array) -> dict[str, jax.Array]:
        """The learned adjacency ``softmax`` of the ``candidates`` ``[N, N]``, each row's
        entropy ``[N]`` and the exact top-k ``[N, N]``."""
        p = jax.nn.softmax(self.candidates(edges), -1)
        entropy = -(p * jnp.log(p + 1e-12)).sum(-1)
        return {
            "graph/adjacency": p,
            "graph/row_entropy": entropy,
            "graph/topk": self.topk(edges),
        }

    def __call__(self, h, obs, ctx, extras=None):
        raise ValueError("comm=graph is CommFormer's graph: use it with policy=commformer")


def make_graph(cfg: GraphConfig, env) -> Graph:
    if cfg.mode == GraphMode.sparse and env.num_agents < 2:
        raise ValueError(
            f"comm=graph: a learned graph needs 2 or more agents, got {env.num_agents}"
        )
    if not 0.0 < cfg.sparsity <= 1.0 or cfg.warmup < 0 or cfg.tau <= 0 or cfg.edge_period < 2:
        raise ValueError(
            "comm: 0 < sparsity <= 1, warmup >= 0, tau > 0 and edge_period >= 2 are needed, "
            f"got sparsity={cfg.sparsity}, warmup={cfg.warmup}, tau={cfg.tau}, "
            f"edge_period={cfg.edge_period}"
        )
    if not 0.0 <= cfg.gate_budget <= 1.0 or cfg.gate_coef < 0:
        raise ValueError(f"comm: gate_budget in [0, 1] and gate_coef >= 0, got {cfg}")
    check_heard(cfg.heard)
    return Graph(cfg, env.num_agents)
