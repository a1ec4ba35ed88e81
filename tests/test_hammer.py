"""HAMMER: who gets gradient from which loss, the baselines' equivalences, the rl messenger's
team reward, the reference's returns, and the reset and observation ablations."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.wrappers import ObservationMask, vectorize
from marl.algos import RunningStats, gae
from marl.comm.messenger import Messenger, MessengerConfig
from marl.config import AlgoConfig, Returns
from marl.policies import Context, Role
from marl.train import advantages, build, train

HAMMER = ["policy=hammer", "comm=messenger"]


def one_seed(cfg):
    _, policy, learner, state = build(cfg)
    return policy, learner, jax.tree.map(lambda x: x[0], state)


def loss_grads(cfg):
    """Gradients of the agents' actor loss, their value loss and (rl) the messenger's own
    actor loss, on one acted step, through ``evaluate`` with the stored extras."""
    policy, learner, state = one_seed(cfg)
    key, ctx, obs = jax.random.PRNGKey(3), learner.ctx(0), state.runner.obs
    acted = policy.act(state.params, state.method_state, state.runner.carry, obs, key, ctx)

    def losses(params):
        out = policy.evaluate(
            params, {}, None, obs, acted.action, acted.extras, key, ctx
        )  # feed-forward: no carry
        log_prob, value = policy.by_role(out.log_prob), policy.by_role(out.value)
        return {
            "actor": -jnp.sum(log_prob["agents"] * jnp.arange(1.0, 1.0 + obs.obs.shape[1])),
            "value": jnp.sum((value["agents"] - 1.0) ** 2),
            **({"messenger": -jnp.sum(log_prob["messenger"])} if "messenger" in log_prob else {}),
        }

    names = losses(state.params).keys()
    return {n: jax.grad(lambda p, n=n: losses(p)[n])(state.params)["params"] for n in names}


def norms(tree) -> float:
    return float(sum(jnp.abs(x).sum() for x in jax.tree.leaves(tree)))


@pytest.mark.parametrize("mode", ["learned", "dru"])
def test_the_messenger_learns_from_the_actor_loss_only(tiny, mode):
    grads = loss_grads(tiny(mode, *HAMMER, f"comm.mode={mode}"))
    assert norms(grads["actor"]["messenger"]) > 0  # actor loss -> message -> messenger
    assert norms(grads["value"]["messenger"]) == 0  # the critic hears it stop-gradient
    assert norms(grads["value"]["critic"]) > 0 and norms(grads["actor"]["critic"]) == 0


def test_the_rl_messenger_learns_from_its_own_loss_only(tiny):
    grads = loss_grads(tiny("v1", *HAMMER, "comm.mode=rl"))
    assert norms(grads["messenger"]["messenger"]) > 0
    assert norms(grads["actor"]["messenger"]) == 0  # the sampled message is an input
    assert norms(grads["value"]["messenger"]) == 0
    assert norms(grads["messenger"]["actor"]) == 0


def test_the_rl_messenger_advantage_uses_the_team_mean_reward(tiny):
    policy, _, _ = one_seed(tiny("v1", *HAMMER, "comm.mode=rl"))
    assert policy.roles["messenger"] == Role(units="team", reward="team")
    rng = np.random.default_rng(0)
    reward = jnp.asarray(rng.normal(size=(6, 2, 3)), jnp.float32)  # [T, B, N]
    value = {"agents": jnp.zeros((6, 2, 3)), "messenger": jnp.asarray(rng.normal(size=(6, 2, 1)))}
    nxt = jax.tree.map(lambda v: v + 1.0, value)
    done = jnp.zeros((6, 2), bool).at[2].set(True)
    algo = AlgoConfig(gamma=0.9, gae_lambda=0.8)
    args = (reward, jnp.zeros((6, 2, 3), bool), done, jnp.ones((6, 2, 3), bool), value, nxt)
    norm = {r: RunningStats.create(()) for r in policy.roles}
    adv, _, _ = advantages(algo, policy.roles, *args, norm)
    cut = jnp.broadcast_to(done[..., None], (6, 2, 1))
    team = reward.mean(-1, keepdims=True)
    expected = gae(team, value["messenger"], nxt["messenger"], jnp.zeros(cut.shape), cut, 0.9, 0.8)[
        0
    ]
    np.testing.assert_allclose(adv["messenger"], expected, rtol=1e-6)


def test_zero_length_messages_train_exactly_like_independent_learners(tiny):
    def params_after_an_update(*overrides):
        _, _, learner, state = build(tiny("il", "policy=hammer", *overrides))
        state, _ = jax.jit(jax.vmap(learner.update))(state)  # 2 epochs x 2 minibatches
        return jax.device_get(state.params["params"])

    il = params_after_an_update("comm=none")
    silent = params_after_an_update("comm=messenger", "comm.meslen=0", "comm.mode=dru")
    jax.tree.map(np.testing.assert_array_equal, il, silent)
    talking = params_after_an_update("comm=messenger", "comm.meslen=1", "comm.mode=dru")
    same_shape = [
        (a, b)
        for a, b in zip(
            jax.tree.leaves(il["actor"]), jax.tree.leaves(talking["actor"]), strict=True
        )
        if a.shape == b.shape
    ]
    assert same_shape and any(not np.array_equal(a, b) for a, b in same_shape)  # can fail


def test_random_messages_do_not_depend_on_observations(tiny):
    policy, learner, state = one_seed(tiny("random", *HAMMER, "comm.mode=random"))
    assert "messenger" not in state.params["params"]
    obs, key, ctx = state.runner.obs, jax.random.PRNGKey(5), learner.ctx(0)
    other = obs.replace(obs=obs.obs + 10.0)
    sent = [policy.act(state.params, {}, None, o, key, ctx).extras for o in (obs, other)]
    np.testing.assert_array_equal(*sent)
    assert sent[0].min() >= 0 and sent[0].max() < 1


def test_the_messenger_is_also_a_channel_of_the_mlp_policies(tiny):
    policy, learner, state = one_seed(tiny("mappo", "policy=mappo", "comm=messenger"))
    acted = policy.act(
        state.params,
        {},
        state.runner.carry,
        state.runner.obs,
        jax.random.PRNGKey(0),
        learner.ctx(0),
    )
    assert acted.aux["message"].shape == (4, 3, 1)  # [B, N, meslen]
    with pytest.raises(ValueError, match=r"comm.mode=rl \(a learner\) and comm.sees_actions need"):
        build(tiny("mappo-rl", "policy=mappo", "comm=messenger", "comm.mode=rl"))


@pytest.mark.parametrize("mode", ["learned", "dru", "random", "rl"])
def test_shuffled_messages_are_the_next_environments_and_only_at_evaluation(mode):
    """``heard=shuffled``: environment e hears the messages sent in environment e + 1 and
    records what was sent; the update refuses it."""
    cfg = MessengerConfig(mode=mode, meslen=2)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 3, 4))  # [E, N, D]
    ctx, rngs = Context.at(0, 1), {"comm": jax.random.PRNGKey(2)}
    sent_by = Messenger(cfg, 3)
    variables = sent_by.init({"params": jax.random.PRNGKey(1), **rngs}, x, ctx, method="send")
    shuffled = Messenger(replace(cfg, heard="shuffled"), 3)
    sent, heard = (
        m.apply(variables, x, ctx, rngs=rngs, method="send") for m in (sent_by, shuffled)
    )
    np.testing.assert_array_equal(heard.message, np.roll(sent.message, -1, axis=0))
    np.testing.assert_array_equal(heard.aux["message"], sent.message)
    assert not np.array_equal(heard.message, sent.message)
    with pytest.raises(ValueError, match="intervention for evaluation"):
        shuffled.apply(variables, x, ctx, sent.extras, rngs=rngs, method="send")


def test_a_hammer_team_evaluates_with_shuffled_messages_and_refuses_to_train_with_them(tiny):
    policy, learner, state = one_seed(tiny("sent", *HAMMER))
    shuffled, _, _ = one_seed(tiny("shuffled", *HAMMER, "comm.heard=shuffled"))
    obs, carry, key, ctx = (
        state.runner.obs,
        state.runner.carry,
        jax.random.PRNGKey(3),
        learner.ctx(0),
    )
    acted = [p.act(state.params, {}, carry, obs, key, ctx, True) for p in (policy, shuffled)]
    np.testing.assert_array_equal(acted[0].aux["message"], acted[1].aux["message"])
    assert not np.array_equal(acted[0].log_prob, acted[1].log_prob)  # the actors heard it
    with pytest.raises(ValueError, match="intervention for evaluation"):
        train(tiny("refused", *HAMMER, "comm.heard=shuffled"))
    with pytest.raises(ValueError, match="heard must be one of"):
        build(tiny("bad", *HAMMER, "comm.heard=muted"))


def test_reference_returns_are_monte_carlo_normalised_per_agent():
    """Discounted returns to the episode's (or rollout's) end, no bootstrap, normalised over
    the batch per agent; advantage = normalised return - V."""
    algo = AlgoConfig(gamma=0.5, returns=Returns.mc_normalised)
    reward = jnp.array([[1.0, 0.0], [2.0, 4.0], [3.0, 8.0], [4.0, 0.0]])[:, None]  # [T=4, B=1, N=2]
    done = jnp.array([False, True, False, False])[:, None]
    value = {"agents": jnp.full((4, 1, 2), 0.25)}
    adv, target, _ = advantages(
        algo,
        {"agents": Role()},
        reward,
        jnp.zeros((4, 1, 2), bool),
        done,
        jnp.ones((4, 1, 2), bool),
        value,
        jax.tree.map(lambda v: v + 100.0, value),  # never used: no bootstrap
        {"agents": RunningStats.create(())},
    )
    returns = np.array([[1 + 0.5 * 2, 0 + 0.5 * 4], [2, 4], [3 + 0.5 * 4, 8], [4, 0]])
    normalised = (returns - returns.mean(0)) / (returns.std(0) + 1e-5)
    np.testing.assert_allclose(target["agents"][:, 0], normalised, rtol=1e-5)
    np.testing.assert_allclose(adv["agents"][:, 0], normalised - 0.25, rtol=1e-5)


def test_fixed_start_restarts_every_episode_of_every_copy_from_one_state():
    env = envs.make("mpe/spread", max_steps=3)
    venv = vectorize(env, 4, fixed_start=True)
    state, ts = venv.reset(jax.random.PRNGKey(0))
    first = np.asarray(ts.obs)
    np.testing.assert_array_equal(first, np.broadcast_to(first[:1], first.shape))
    key = jax.random.PRNGKey(1)
    starts = []
    for t in range(7):  # episodes end at t = 2 and 5: the next obs starts a new one
        key, k = jax.random.split(key)
        actions = jax.random.randint(k, (4, 3), 0, 5)
        state, ts = venv.step(k, state, actions)
        if t in (2, 5):
            starts.append(np.asarray(ts.obs))
    for obs in starts:
        np.testing.assert_array_equal(obs, first)
    fresh = np.asarray(vectorize(env, 4).reset(jax.random.PRNGKey(0))[1].obs)
    assert not np.array_equal(fresh[0], fresh[1])  # without it, copies differ


def test_observation_mask_keeps_the_first_values_of_the_chosen_agents():
    env = envs.make("mpe/spread")
    full, one, all_ = (
        jax.device_get(e.reset(jax.random.PRNGKey(0))[1])
        for e in (env, ObservationMask(env, 10, [1]), ObservationMask(env, 10))
    )
    np.testing.assert_array_equal(one.obs[[0, 2]], full.obs[[0, 2]])
    np.testing.assert_array_equal(one.obs[1, :10], full.obs[1, :10])
    assert not one.obs[1, 10:].any() and not all_.obs[:, 10:].any()
    np.testing.assert_array_equal(one.state, full.state)
    with pytest.raises(ValueError, match=r"agents in \[0, 3\)"):
        ObservationMask(env, 10, [3])


def test_the_messenger_sees_the_previous_actions_from_the_carry(tiny):
    policy, learner, state = one_seed(tiny("actions", *HAMMER, "comm.sees_actions=true"))
    obs, ctx = state.runner.obs, learner.ctx(0)
    first = policy.act(state.params, {}, state.runner.carry, obs, jax.random.PRNGKey(0), ctx)
    going = obs.replace(reset=jnp.zeros_like(obs.reset))
    second = policy.act(state.params, {}, first.carry, going, jax.random.PRNGKey(1), ctx)
    np.testing.assert_array_equal(second.extras["previous"], jax.nn.one_hot(first.action, 5))
    start = obs.replace(reset=jnp.ones_like(obs.reset))
    restarted = policy.act(state.params, {}, first.carry, start, jax.random.PRNGKey(1), ctx)
    assert not restarted.extras["previous"].any()  # an episode's first step: no previous action


def test_the_probe_tells_a_linear_code_from_noise():
    from marl.comm.messenger import message_stats

    rng = np.random.default_rng(0)
    obs = rng.normal(size=(800, 12))
    linear = (obs @ rng.normal(size=(12, 3))).reshape(800, 3, 1)
    noise = rng.uniform(size=(800, 3, 1))
    assert (message_stats(linear, obs)["message/probe_r2"] > 0.99).all()
    assert (message_stats(noise, obs)["message/probe_r2"] < 0.05).all()
    np.testing.assert_allclose(message_stats(noise, obs)["message/var"], 1 / 12, rtol=0.15)
