"""CommFormer: the bi-level schedule, the top-k graph and its phases, who hears whom (graph,
gate, no communication), and autoregressive acting against teacher forcing."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from envs.registry import make
from marl.comm.graph import Graph, GraphConfig, make_graph
from marl.policies import Context
from marl.train import build, train

CF = ["policy=commformer", "comm=graph", "comm.warmup=0"]


def one_seed(cfg):
    _, policy, learner, state = build(cfg)
    return policy, learner, jax.tree.map(lambda x: x[0], state)


def split(params):
    """(edges, every other parameter)."""
    graph = {k: v for k, v in params["graph"].items() if k != "edges"}
    return params["graph"]["edges"], {**params, "graph": graph}


def test_bilevel_epochs_step_either_the_edges_or_the_model(tiny):
    """Through the learner's optimiser, on the gradient of a PPO-like loss from ``evaluate``:
    epochs 0-3 step the model, epoch 4 the edges ((epoch + 1) % 5 == 0)."""
    policy, learner, state = one_seed(tiny("bilevel", *CF))
    key, ctx, obs = jax.random.PRNGKey(3), learner.ctx(0), state.runner.obs
    acted = policy.act(state.params, state.method_state, None, obs, key, ctx)

    @jax.jit
    def step(params, opt_state, epoch):
        def loss(p):
            out = policy.evaluate(
                p, state.method_state, None, obs, acted.action, acted.extras, key, ctx
            )
            return -jnp.sum(out.log_prob * jnp.arange(1.0, 4.0)) + jnp.sum(out.value**2)

        grads = jax.grad(loss)(params)
        updates, opt_state = learner.optimizer.update(
            grads, opt_state, params, ctx=learner.ctx(0, epoch)
        )
        return optax.apply_updates(params, updates), opt_state, grads

    params, opt_state = state.params, state.opt_state
    for epoch in range(10):
        new, opt_state, grads = step(params, opt_state, epoch)
        (e0, m0), (e1, m1) = split(params["params"]), split(new["params"])
        assert np.abs(split(grads["params"])[0]).sum() > 0  # the edges always get gradient
        if (epoch + 1) % 5 == 0:  # an edge epoch
            assert not np.array_equal(e0, e1)
            jax.tree.map(np.testing.assert_array_equal, m0, m1)
        else:
            np.testing.assert_array_equal(e0, e1)
            assert not np.array_equal(m0["start"], m1["start"])
        params = new


def mask_at(cfg, update, sample, n=5, progress=None):
    graph = Graph(cfg, n)
    obs = jnp.zeros((4, n, 2))
    ctx = Context.at(update, 100 if progress is None else update / progress)
    variables = graph.init({"params": jax.random.PRNGKey(0)}, obs, ctx, method="mask")
    out = graph.apply(
        variables, obs, ctx, None, sample, method="mask", rngs={"comm": jax.random.PRNGKey(1)}
    )
    return variables["params"]["edges"], out


def test_every_row_of_the_hard_graph_has_k_senders_and_the_phases():
    cfg = GraphConfig(sparsity=0.4, warmup=10)  # N = 5 -> k = 2
    edges, (mask, relation, stored, _) = mask_at(cfg, update=10, sample=True)
    np.testing.assert_array_equal(stored["graph"].sum(-1), 2.0)  # [4 envs, 5 rows]
    assert not np.array_equal(stored["graph"][0], stored["graph"][1])  # sampled per step
    off = 1.0 - np.eye(5)
    np.testing.assert_allclose(mask * off, stored["graph"] * off, atol=1e-6)
    np.testing.assert_array_equal(np.diagonal(mask, axis1=-2, axis2=-1), 1.0)  # self-loop
    np.testing.assert_array_equal(relation, (mask != 0).astype(int))
    _, (warm, _, _, _) = mask_at(cfg, update=9, sample=True)  # warm-up: the raw edges
    np.testing.assert_allclose(warm[0] * off, edges * off)
    _, (_, _, exact, _) = mask_at(cfg, update=10, sample=False)  # rollout of evaluation
    np.testing.assert_array_equal(exact["noise"], 0.0)
    np.testing.assert_array_equal(exact["graph"][0], exact["graph"][1])
    _, (_, _, stable, _) = mask_at(cfg, update=60, sample=True, progress=0.6)
    np.testing.assert_array_equal(stable["noise"], 0.0)  # post-stable: the exact top-k


@pytest.mark.parametrize("self_loop", ["replace", "add"])
def test_under_replace_a_row_picks_its_senders_among_the_others(self_loop):
    """Every agent hears itself under ``replace``, so its ``k`` slots go to others even where
    its own edge is the largest, and the edges keep a gradient through the picked ones (a
    row that had picked itself had none, and kept its graph for ever); ``add`` (the
    reference) ranks all ``N``."""
    cfg, n = GraphConfig(sparsity=0.4, warmup=0, explore=False, self_loop=self_loop), 3
    graph, obs, ctx = Graph(cfg, n), jnp.zeros((4, n, 2)), Context.at(5, 100)
    edges = 1.0 + jnp.eye(n) + 0.1 * jnp.roll(jnp.eye(n), 1, axis=1)  # self, then i + 1

    def out(edges):
        return graph.apply({"params": {"edges": edges}}, obs, ctx, method="mask")

    mask, _, stored, _ = out(edges)
    weight = jax.random.normal(jax.random.PRNGKey(0), (n, n))
    grad = jax.grad(lambda e: (out(e)[0] * weight).sum())(edges)
    if self_loop == "replace":
        np.testing.assert_array_equal(stored["graph"][0], np.roll(np.eye(n), 1, axis=1))
        np.testing.assert_array_equal(np.diagonal(mask, axis1=-2, axis2=-1), 1.0)
        assert np.abs(grad).min(-1).max() == 0 and np.abs(grad).sum(-1).min() > 0
    else:
        np.testing.assert_array_equal(stored["graph"][0], np.eye(n))
        np.testing.assert_allclose(np.diagonal(mask, axis1=-2, axis2=-1), 2.0)


def test_a_learned_graph_needs_two_agents():
    """One agent has no one to pick a sender from: a clear error, a dense graph still builds."""
    lone = make("predator_prey/pp", num_predators=1)
    with pytest.raises(ValueError, match="needs 2 or more agents, got 1"):
        make_graph(GraphConfig(), lone)
    assert make_graph(GraphConfig(mode="dense"), lone).num_agents == 1


@partial(jax.jit, static_argnums=0)
def logits(policy, params, obs, action, extras):
    """Every agent's action logits by teacher forcing, ``[B, N, A]``."""
    ctx = Context.at(0, 1)
    rep, _, dec_mask, dec_rel, _, _ = policy.net.apply(
        params, obs.obs, ctx, extras, method="encode"
    )
    tokens = policy.net.apply(params, action, method="embed_actions")
    return policy.net.apply(params, rep, tokens, dec_mask, dec_rel, method="decode")


def ring(params, n=3):
    """Edges that make agent i hear agent (i + 1) % n (k = 1)."""
    edges = 10.0 * jnp.roll(jnp.eye(n), 1, axis=1)
    graph = {**params["params"]["graph"], "edges": edges}
    return {"params": {**params["params"], "graph": graph}}


def perturbed(obs, agent):
    """Agent's observation plus noise (not a constant: the encoder's LayerNorm removes one)."""
    noise = jax.random.normal(jax.random.PRNGKey(agent), obs.obs[:, agent].shape)
    return obs.replace(obs=obs.obs.at[:, agent].add(noise))


def test_only_senders_change_an_agents_action_distribution(tiny):
    policy, learner, state = one_seed(tiny("ring", *CF))
    params, obs = ring(state.params), state.runner.obs
    acted = policy.act(params, {}, None, obs, jax.random.PRNGKey(0), learner.ctx(0), True)
    np.testing.assert_array_equal(acted.extras["graph"][0], np.roll(np.eye(3), 1, axis=1))
    base = logits(policy, params, obs, acted.action, acted.extras)
    quiet = logits(policy, params, perturbed(obs, 2), acted.action, acted.extras)
    np.testing.assert_array_equal(base[:, 0], quiet[:, 0])  # 2 is not among 0's senders
    loud = logits(policy, params, perturbed(obs, 1), acted.action, acted.extras)
    assert np.abs(base[:, 0] - loud[:, 0]).max() > 1e-4  # 1 is


def test_the_first_action_logits_and_values_start_near_zero(tiny):
    """The reference's initialisation: the heads' last layers (orthogonal, gain 0.01) start
    every agent near the uniform policy and every value near zero, whatever it observes."""
    policy, learner, state = one_seed(tiny("init", *CF))
    obs = perturbed(perturbed(state.runner.obs, 0), 1)
    acted = policy.act(state.params, {}, None, obs, jax.random.PRNGKey(0), learner.ctx(0), True)
    assert np.abs(logits(policy, state.params, obs, acted.action, acted.extras)).max() < 0.05
    assert np.abs(acted.value).max() < 0.05


@pytest.mark.parametrize("closed", ["gate", pytest.param("none", marks=pytest.mark.slow)])
def test_closed_gates_and_no_communication_hear_no_one(tiny, closed):
    overrides = [*CF, "comm.gate=true"] if closed == "gate" else ["policy=commformer", "comm=none"]
    policy, learner, state = one_seed(tiny(closed, *overrides))
    params, obs = state.params, state.runner.obs
    if closed == "gate":
        params = ring(params)
        shut = {**params["params"]["graph"]["gate_out"], "bias": jnp.full(1, -100.0)}
        params["params"]["graph"]["gate_out"] = shut
    acted = policy.act(params, {}, None, obs, jax.random.PRNGKey(0), learner.ctx(0), True)
    base = logits(policy, params, obs, acted.action, acted.extras)
    for other in (1, 2):
        moved = logits(policy, params, perturbed(obs, other), acted.action, acted.extras)
        np.testing.assert_array_equal(base[:, 0], moved[:, 0])
    if closed == "gate":  # the same graph with open gates: agent 0 hears agent 1
        params["params"]["graph"]["gate_out"]["bias"] = jnp.full(1, 100.0)
        acted = policy.act(params, {}, None, obs, jax.random.PRNGKey(0), learner.ctx(0), True)
        base = logits(policy, params, obs, acted.action, acted.extras)
        loud = logits(policy, params, perturbed(obs, 1), acted.action, acted.extras)
        assert np.abs(base[:, 0] - loud[:, 0]).max() > 1e-4


@pytest.mark.parametrize("continuous", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_autoregressive_acting_matches_teacher_forcing(tiny, continuous):
    extra = ["+env.options.continuous_actions=true"] if continuous else []
    policy, learner, state = one_seed(tiny(f"ar{continuous}", *CF, *extra))
    obs, ctx = state.runner.obs, learner.ctx(0)
    acted = policy.act(state.params, {}, None, obs, jax.random.PRNGKey(2), ctx)
    assert acted.action.shape == ((4, 3, 5) if continuous else (4, 3))
    out = policy.evaluate(
        state.params, state.method_state, None, obs, acted.action, acted.extras, None, ctx
    )
    np.testing.assert_allclose(out.log_prob, acted.log_prob, rtol=0, atol=1e-5)


def test_shuffled_senders_are_the_next_environments_and_only_at_evaluation(tiny):
    """``heard=shuffled``: agent i's representation is the one it would have if its senders'
    observations were those of environment e + 1, and it decodes its action from environment
    e + 1's actions; the update and training refuse it."""
    dense = [*CF, "comm.mode=dense"]  # everyone hears everyone
    policy, learner, state = one_seed(tiny("sent", *dense))
    shuffled, _, _ = one_seed(tiny("shuffled", *dense, "comm.heard=shuffled"))
    params, obs, ctx = state.params, state.runner.obs, learner.ctx(0)
    encoded = shuffled.net.apply(params, obs.obs, ctx, method="encode")
    rep, next_obs = encoded[0], jnp.roll(obs.obs, -1, axis=0)  # [E, N, E], [E, N, O]
    for i in range(obs.obs.shape[1]):
        spliced = next_obs.at[:, i].set(obs.obs[:, i])  # agent i at home, its senders next door
        alone = policy.net.apply(params, spliced, ctx, method="encode")[0]
        np.testing.assert_allclose(rep[:, i], alone[:, i], rtol=0, atol=1e-5)
    sent = policy.net.apply(params, obs.obs, ctx, method="encode")[0]
    assert np.abs(rep - sent).max() > 1e-3
    acted = shuffled.act(params, {}, None, obs, jax.random.PRNGKey(1), ctx, True)
    tokens = shuffled.net.apply(params, jnp.roll(acted.action, -1, 0), method="embed_actions")
    out = shuffled.net.apply(params, rep, tokens, *encoded[2:4], method="decode")
    np.testing.assert_array_equal(out.argmax(-1), acted.action)
    with pytest.raises(ValueError, match="intervention for evaluation"):
        shuffled.evaluate(params, {}, None, obs, acted.action, acted.extras, None, ctx)
    with pytest.raises(ValueError, match="intervention for evaluation"):
        train(tiny("refused", *CF, "comm.heard=shuffled"))
