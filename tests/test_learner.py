"""The learner's plug points for methods, one test (or more) per item of the method-ready
learner: context, stored extras (the PPO ratio), method state, per-group optimisers, roles,
the algorithm registry, typed method configs, the comm slot, metrics beyond scalars, and
one rollout path for JAX and PettingZoo environments."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from omegaconf.errors import OmegaConfBaseException

from marl.checkpoint import Checkpointer
from marl.config import AlgoConfig
from marl.optim import make_optimizer, resolve_groups
from marl.policies import Context, Role
from marl.rollout import HostEnv, rollout
from marl.train import (
    Batch,
    TrainingDiverged,
    TrainState,
    _check_finite,
    advantages,
    build,
    train,
)
from tests.conftest import TINY, compose_config

# --- 1 + 2: keys, context, stored extras: the PPO ratio is 1 at the first minibatch ----------

POLICIES = {
    "ippo-unshared": ["policy=ippo", "policy.share_parameters=false"],
    "mappo": ["policy=mappo"],
    "centralised": ["policy=centralised"],
    "mappo-gru-normalised": [
        "policy.recurrent=true",
        "algo.normalize_obs=true",
        "algo.normalize_values=true",
    ],
    "mappo-continuous": ["+env.options.continuous_actions=true"],
    "probe": ["comm.name=probe"],
    "noisy": ["policy=noisy"],
    "team": ["policy=team"],  # random messages (extras) and a second role
    "hammer-v1": ["policy=hammer", "comm=messenger", "comm.mode=rl"],  # sampled messages
    "hammer-v3": ["policy=hammer", "comm=messenger", "comm.mode=dru"],  # stored DRU noise
    # the previous actions the messenger saw, kept in the carry and stored
    "hammer-actions": ["policy=hammer", "comm=messenger", "comm.sees_actions=true"],
    # symbols re-quantised at update time with the rollout's codebook (EMA, restarts)
    "vq": ["env=speaker_listener", "comm=vq", "comm.seq_len=2"],
    "vq-unit-codes-head": ["comm=vq", "comm.normalise=true", "policy.head_hidden=[8]"],
    # sampled symbol sequences (stored) decide the moves; one a2c step per rollout
    "aim": [
        "experiment=aim_pd",
        "policy.pretrain_steps=2",
        "algo.update_epochs=1",
        "algo.num_minibatches=1",
    ],
    # a Gumbel top-k graph, gate noise and dropout masks drawn while acting and stored
    "commformer": [
        "policy=commformer",
        "comm=graph",
        "comm.warmup=0",
        "comm.gate=true",
        "policy.dropout=0.1",
    ],
}


def first_minibatch_ratio(cfg) -> dict[str, np.ndarray]:
    """exp(new - old log-probability) per role on the first minibatch of the first epoch,
    through the trainer's own rollout, shuffle and ``evaluate`` call."""
    _, policy, learner, state = build(cfg)
    state = jax.tree.map(lambda x: x[0], state)  # one seed

    @jax.jit
    def ratios(state):
        key = jax.random.PRNGKey(1)
        ctx = learner.ctx(state.update)
        args = (state.params, state.method_state, state.runner, key, cfg.algo.num_steps, ctx)
        _, traj = rollout(policy, learner.venv, *args)
        batch = Batch(traj.obs, traj.action, traj.extras, traj.log_prob, traj.value, {}, {})
        carry0, mbs = learner._minibatches(key, batch, state.runner.carry)
        carry0, mb = jax.tree.map(lambda x: x[0], (carry0, mbs))
        out = policy.evaluate(
            state.params,
            state.method_state,
            carry0,
            mb.obs,
            mb.action,
            mb.extras,
            key,
            learner.ctx(state.update, 0, 0),
        )
        new = policy.by_role(out.log_prob)
        return {role: jnp.exp(new[role] - mb.log_prob[role]) for role in new}

    return jax.device_get(ratios(state))


@pytest.mark.parametrize("name", POLICIES)
def test_ratio_is_one_at_the_first_minibatch(tiny, name):
    for role, ratio in first_minibatch_ratio(tiny(name, *POLICIES[name])).items():
        np.testing.assert_allclose(ratio, 1.0, rtol=0, atol=1e-6, err_msg=f"role {role}")


def test_a_centralised_actor_acts_on_the_global_state(tiny):
    """``policy=centralised``: every agent's action comes from the global state; the local
    observations are not read. (The decentralised actor: the other way round.)"""
    for name, reads, ignores in (("centralised", "state", "obs"), ("mappo", "obs", "state")):
        env, policy, _, state = build(tiny(name, f"policy={name}"))
        params = jax.tree.map(lambda x: x[0], state.params)
        obs = jax.tree.map(lambda x: x[0], state.runner.obs)
        key, ctx = jax.random.PRNGKey(0), Context.at(0, 1)

        def logits(o, policy=policy, params=params, ctx=ctx):
            carry = policy.initial_carry(o.reset.shape)
            return policy.net.apply(params, carry, o, ctx)[1]

        base = logits(obs)
        noise = {k: jax.random.normal(key, getattr(obs, k).shape) for k in ("obs", "state")}
        moved = {k: logits(obs.replace(**{k: getattr(obs, k) + noise[k]})) for k in noise}
        assert not np.allclose(moved[reads], base), name
        np.testing.assert_array_equal(moved[ignores], base)


def test_without_stored_extras_the_ratio_is_not_one(tiny):
    """The check above can fail: replaying fresh random messages instead of the stored ones."""
    from tests.methods import RandomMessages

    cfg = tiny("fresh", "comm.name=random")
    original = RandomMessages.__call__

    def forgetful(self, h, obs, ctx, extras=None):
        return original(self, h, obs, ctx, None)  # draws new messages in evaluate too

    RandomMessages.__call__ = forgetful
    try:
        ratio = first_minibatch_ratio(cfg)["agents"]
    finally:
        RandomMessages.__call__ = original
    assert np.abs(ratio - 1).max() > 1e-3


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- 3: method state ----------------------------------------------------------------------


def test_non_finite_method_state_stops_training():
    state = TrainState({"w": jnp.ones(2)}, {"ema": jnp.array([0.0, jnp.nan])}, *[None] * 6)
    with pytest.raises(TrainingDiverged, match=r"non-finite method state by update 3"):
        _check_finite(state, {"loss/total": np.ones(2)}, 3)


# --- 4: per-group optimisers --------------------------------------------------------------


def bitwise_equal(a, b) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_a_group_that_does_not_step_is_bitwise_unchanged():
    """CommFormer's bi-level schedule: ``edges`` step on every 5th epoch, unclipped; the
    ``model`` on the others, clipped by its own norm. -0.0 parameters stay -0.0."""
    params = {"edges": jnp.ones((3, 3)), "model": {"w": jnp.ones((4, 2)), "b": -jnp.zeros(2)}}
    labels = {"edges": "edges", "model": {"w": "model", "b": "model"}}
    algo = AlgoConfig(
        groups={
            "edges": {"epoch_period": 5, "epochs": [4], "clip": False, "lr": 1e-2},
            "model": {"epoch_period": 5, "epochs": [0, 1, 2, 3], "max_grad_norm": 1.0},
        }
    )
    opt = make_optimizer(lambda p: labels, resolve_groups(labels, {}, algo), algo, 10)
    state = opt.init(params)
    for epoch in range(10):
        key = jax.random.PRNGKey(epoch)
        grads = jax.tree.map(lambda x, k=key: jax.random.normal(k, x.shape), params)
        updates, new_state = opt.update(grads, state, params, ctx=Context.at(0, 10, epoch))
        new_params = optax.apply_updates(params, updates)
        stepping = "edges" if (epoch + 1) % 5 == 0 else "model"
        idle = "model" if stepping == "edges" else "edges"
        adam = [s[-1].inner_states for s in (state, new_state)]  # the per-group Adam states
        bitwise_equal((params[idle], adam[0][idle]), (new_params[idle], adam[1][idle]))
        moved = jax.tree.leaves(params[stepping]), jax.tree.leaves(new_params[stepping])
        assert all(not np.array_equal(x, y) for x, y in zip(*moved, strict=True))
        params, state = new_params, new_state


def test_clipping_applies_to_the_clipped_groups_only():
    params = {"a": jnp.zeros(3), "b": jnp.zeros(3)}
    labels = {"a": "a", "b": "b"}
    algo = AlgoConfig(max_grad_norm=0.5, groups={"b": {"clip": False}}, lr=1.0)
    opt = make_optimizer(lambda p: labels, resolve_groups(labels, {}, algo), algo, 10)
    ctx = Context.at(0, 10)
    small = {"a": jnp.array([0.1, 0.0, 0.0]), "b": jnp.zeros(3)}
    huge = {"a": small["a"], "b": jnp.array([1e6, 0.0, 0.0])}
    u_small, _ = opt.update(small, opt.init(params), params, ctx=ctx)
    u_huge, _ = opt.update(huge, opt.init(params), params, ctx=ctx)
    np.testing.assert_array_equal(u_small["a"], u_huge["a"])  # b's norm does not scale a


def test_a_frozen_group_keeps_its_initial_parameters(tiny):
    cfg = tiny("frozen", "+algo.groups.critic.frozen=true")
    init = jax.device_get(build(cfg)[3].params["params"])
    run = train(cfg)
    final = Checkpointer(run / "checkpoints", 3).load()["params"]["params"]
    jax.tree.map(np.testing.assert_array_equal, init["critic"], final["critic"])
    moved = jax.tree.leaves(init["encoder"])[0], jax.tree.leaves(final["encoder"])[0]
    assert not np.array_equal(*moved)


def test_group_settings_are_checked(tiny):
    with pytest.raises(
        ValueError, match=r"algo.groups.actor.epochs=\[3\]: each must be in \[0, epoch_period=2\)"
    ):
        build(tiny("bad", "+algo.groups.actor.epoch_period=2", "+algo.groups.actor.epochs=[3]"))
    with pytest.raises(OmegaConfBaseException, match="Key 'lrr' not in 'GroupConfig'"):
        build(tiny("bad", "+algo.groups.actor.lrr=1"))


# --- 5: roles ----------------------------------------------------------------------------


def test_two_roles_get_their_own_advantages():
    """Agents on their own rewards, a team-level messenger on the team mean (hand-computed)."""
    gamma, lam = 0.5, 0.5
    algo = AlgoConfig(gamma=gamma, gae_lambda=lam, normalize_values=False)
    roles = {"agents": Role(), "messenger": Role(units="team", reward="team")}
    reward = jnp.array([[[1.0, 3.0]], [[2.0, 0.0]]])  # [T=2, B=1, N=2]
    terminal = jnp.zeros((2, 1, 2), bool)
    done = jnp.zeros((2, 1), bool)
    active = jnp.ones((2, 1, 2), bool)
    value = {"agents": jnp.zeros((2, 1, 2)), "messenger": jnp.zeros((2, 1, 1))}
    next_value = {"agents": jnp.full((2, 1, 2), 4.0), "messenger": jnp.full((2, 1, 1), 8.0)}
    from marl.algos import RunningStats

    norms = {r: RunningStats.create(()) for r in roles}
    adv, _, _ = advantages(algo, roles, reward, terminal, done, active, value, next_value, norms)
    # delta_t = r_t + gamma * V(s_t+1) - V(s_t); A_0 = delta_0 + gamma * lam * delta_1
    agents_d = np.array([[1 + 2, 3 + 2], [2 + 2, 0 + 2]])
    team_d = np.array([2 + 4, 1 + 4])
    np.testing.assert_allclose(adv["agents"][:, 0], [agents_d[0] + 0.25 * agents_d[1], agents_d[1]])
    np.testing.assert_allclose(adv["messenger"][:, 0, 0], [team_d[0] + 0.25 * team_d[1], team_d[1]])


def test_a_role_with_the_wrong_width_is_named():
    from marl.algos import RunningStats

    roles = {"messenger": Role(units="team", reward="team")}
    value = {"messenger": jnp.zeros((2, 1, 3))}  # per agent, but declared a team unit
    with pytest.raises(
        ValueError, match=r"role 'messenger' \(team units\) needs values \[\.\.\., 1\]"
    ):
        advantages(
            AlgoConfig(),
            roles,
            jnp.zeros((2, 1, 3)),
            jnp.zeros((2, 1, 3), bool),
            jnp.zeros((2, 1), bool),
            jnp.ones((2, 1, 3), bool),
            value,
            value,
            {"messenger": RunningStats.create(())},
        )


def test_a_second_role_trains_beside_the_agents(tiny):
    _, _, learner, state = build(tiny("team", "policy=team"))
    _, metrics = jax.jit(jax.vmap(learner.update))(state)
    for key in ("loss/actor/agents", "loss/actor/messenger", "loss/value/messenger"):
        assert np.isfinite(metrics[key]).all()
    assert set(state.value_norm) == {"agents", "messenger"}


# --- 6: the algorithm registry -------------------------------------------------------------


def test_a2c_learns_the_best_arm_of_a_bandit(tiny):
    run = train(
        tiny(
            "bandit",
            "env.name=test/bandit",
            "~env.options.num_agents",
            "policy=ippo",
            "algo=a2c",
            "algo.num_steps=1",
            "algo.update_epochs=1",
            "algo.num_minibatches=1",
            "env.num_envs=16",
            "algo.total_timesteps=3200",  # 200 updates
            "algo.lr=0.01",
        )
    )
    result = json.loads((run / "summary.json").read_text())["eval"]
    assert result["deterministic"]["best_arm"][0] == 1.0
    assert result["stochastic"]["best_arm"][0] > 0.9


def test_a2c_makes_one_step_per_rollout(tiny):
    with pytest.raises(ValueError, match="algo.name=a2c makes one gradient step per rollout"):
        build(tiny("a2c", "algo=a2c", "algo.update_epochs=4"))


# --- 7: typed configs per method ----------------------------------------------------------


def test_a_policy_has_its_own_config_schema(tiny):
    cfg = tiny("noisy", "policy=noisy", "policy.msg_dim=2")
    assert type(cfg.policy).__name__ == "NoisyConfig" and cfg.policy.msg_dim == 2
    assert build(cfg)[1].num_updates == 4  # make_policy is told the run's length
    with pytest.raises(OmegaConfBaseException, match=r"Key 'msg_dimm' not in 'NoisyConfig'"):
        compose_config([*TINY, "policy=noisy", "+policy.msg_dimm=2"])
    with pytest.raises(OmegaConfBaseException, match=r"Key 'dimm' not in 'RandomConfig'"):
        compose_config([*TINY, "comm.name=random", "+comm.dimm=2"])
    with pytest.raises(ValueError, match=r"unknown comm 'radnom'; comm options are \[.*'random'"):
        compose_config([*TINY, "comm.name=radnom"])


# --- 8 + 9: the comm slot, metrics beyond scalars, the statistics hook ---------------------


def test_context_matrix_metrics_and_statistics_reach_jsonl_and_wandb(tiny):
    """A run with an offline W&B run. The probe channel reports the context it was given
    (``act`` and ``evaluate``), an N x N matrix, and evaluation statistics."""
    run = train(
        tiny("probe", "comm.name=probe", "algo.update_epochs=3", "logger.wandb.mode=offline")
    )
    assert [r["update"] for r in records(run)] == [1, 2, 3, 4]
    assert {"return", "loss/actor", "loss/value", "entropy", "occupied_landmarks"} <= set(
        records(run)[-1]
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["env_steps"] == 128 and summary["eval"]["deterministic"]["return"]
    for r in records(run):
        u = r["update"] - 1  # updates done before this one
        assert r["rollout/ctx/update"] == u and r["ctx/update"] == u
        assert r["rollout/ctx/progress"] == pytest.approx(u / 4)
        assert r["rollout/ctx/epoch"] == 0
        assert r["ctx/epoch"] == pytest.approx(1.0)  # mean over epochs 0, 1, 2
    last = records(run)[-1]
    assert np.shape(last["mix"]) == (3, 3) and np.shape(last["mix/seeds"]) == (1, 3, 3)
    assert np.shape(last["rollout/mix"]) == (3, 3)
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and list(offline[0].glob("run-*.wandb"))
    media = offline[0] / "files" / "media" / "images"
    images = {str(p.relative_to(media)).rsplit("_", 2)[0] for p in media.rglob("*.png")}
    assert images == {"mix", "rollout/mix"}  # heatmaps of the matrix metrics
    evals = [json.loads(line) for line in (run / "eval" / "history.jsonl").read_text().splitlines()]
    stats = evals[-1]["deterministic"]["statistics"]
    assert stats["valid_steps"] == 4 * 25 and sum(stats["action_counts"]) == 3 * 4 * 25


# --- 10: one rollout path for JAX and PettingZoo environments -----------------------------


def test_pettingzoo_and_jax_environments_share_the_rollout(tiny):
    walker = tiny(
        "walker",
        "env=multiwalker",
        "env.num_envs=2",
        "algo.num_steps=16",
        "algo.total_timesteps=128",
        "comm.name=random",
    )
    learner = build(walker)[2]
    assert isinstance(learner.venv, HostEnv)
    ratio = first_minibatch_ratio(walker)["agents"]
    np.testing.assert_allclose(ratio, 1.0, rtol=0, atol=1e-6)
