"""AI Mother Tongue's agents (marl/policies/aim.py): the pretrained, frozen VQ-VAE, the
moves read from the symbols, and who gets gradient from which loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from marl.checkpoint import Checkpointer
from marl.train import build, train

AIM = ["experiment=aim_pd", "algo.update_epochs=1", "algo.num_minibatches=1"]


def test_pretraining_trains_the_vqvae_and_rl_leaves_it_frozen(tiny):
    cfg = tiny("aim", *AIM, "policy.pretrain_steps=60", "algo.total_timesteps=40")
    _, policy, learner, state = build(cfg)
    vqvae = state.method_state["vqvae"]
    untrained = policy.init(
        jax.random.PRNGKey(0), learner.fresh_observations(jax.random.PRNGKey(1))
    )
    obs = learner.fresh_observations(jax.random.PRNGKey(2))
    pixels = policy._split(obs)[0]

    def recon(vqvae):
        return policy.vqvae.apply({"params": vqvae}, pixels)[0]

    trained = float(recon(jax.tree.map(lambda x: x[0], vqvae)))
    assert trained < 0.5 * float(recon(untrained[1]["vqvae"]))
    np.testing.assert_allclose(state.method_state["vqvae_loss"][0, 0], trained, rtol=0.5)
    run = train(cfg)
    final = Checkpointer(run / "checkpoints", 3).load()["method_state"]["vqvae"]
    jax.tree.map(np.testing.assert_array_equal, final, jax.device_get(vqvae))


def test_moves_are_the_first_symbols_half_and_gradients_stay_on_their_paths(tiny):
    _, policy, learner, state = build(tiny("aim", *AIM, "policy.pretrain_steps=0"))
    params, method_state = jax.tree.map(lambda x: x[0], (state.params, state.method_state))
    obs = learner.fresh_observations(jax.random.PRNGKey(3))
    acted = policy.act(params, method_state, None, obs, jax.random.PRNGKey(4), learner.ctx(0))
    symbols = acted.extras["symbols"]  # [E, 2, L]
    np.testing.assert_array_equal(acted.action, symbols[..., 0] >= 16)

    def term(params, which):
        out = policy.evaluate(
            params, method_state, None, obs, acted.action, acted.extras, None, learner.ctx(0)
        )
        if which == "value":
            return out.value[..., 0].sum()
        return out.log_prob[..., which].sum()

    def touched(which) -> set[str]:
        grads = jax.grad(term)(params, which)["params"]
        return {m for m, g in grads.items() if any(np.abs(x).sum() > 0 for x in jax.tree.leaves(g))}

    # A's symbols depend on A's policy and its view only; B's on B's policy and its embedding
    # of A's symbols (discrete: nothing flows back into A); the critic on A's view and B's
    # symbols (A's embedding of them)
    assert touched(0) == {"policy_a", "label_a"}
    assert touched(1) == {"policy_b", "label_b", "symbols_b"}
    assert touched("value") == {"critic", "label_a", "symbols_a"}


def test_the_state_critic_ignores_bs_symbols(tiny):
    _, policy, learner, state = build(
        tiny("aim", *AIM, "policy.pretrain_steps=0", "policy.critic_hears_b=false")
    )
    params, method_state = jax.tree.map(lambda x: x[0], (state.params, state.method_state))
    obs = learner.fresh_observations(jax.random.PRNGKey(3))
    acted = policy.act(params, method_state, None, obs, jax.random.PRNGKey(4), learner.ctx(0))
    other = {"symbols": acted.extras["symbols"].at[..., 1, :].set(0)}
    a, b = (
        policy.evaluate(params, method_state, None, obs, acted.action, e, None, learner.ctx(0))
        for e in (acted.extras, other)
    )
    np.testing.assert_array_equal(a.value, b.value)
    np.testing.assert_array_equal(a.value[..., 0], a.value[..., 1])
    assert jnp.isfinite(a.log_prob).all()
