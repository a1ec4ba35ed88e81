"""Every registered environment: jit/vmap, determinism, no NaN, wrappers, registry errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.wrappers import AutoReset, EpisodeStats, VecEnv, vectorize
from tests.env_cases import CASES, IDS, SLOW_VARIANTS


def random_actions(env, key, batch=()):
    """Uniform random actions for ``env``, respecting each agent's own action space."""
    if env.discrete:
        return jax.random.randint(key, (*batch, env.num_agents), 0, env.action_sizes)
    space = env.action_space(env.agents[0])
    shape = (*batch, env.num_agents, env.action_dim)
    return jax.random.uniform(key, shape, minval=space.low.min(), maxval=space.high.max())


def rollout(env, key, steps, num_envs):
    venv = vectorize(env, num_envs)

    def body(carry, key):
        (state,) = carry
        k_act, k_step = jax.random.split(key)
        state, ts = venv.step(k_step, state, random_actions(env, k_act, (num_envs,)))
        return (state,), ts

    k_reset, k_steps = jax.random.split(key)
    state, _ = venv.reset(k_reset)
    return jax.lax.scan(body, (state,), jax.random.split(k_steps, steps))[1]


@pytest.mark.parametrize(("name", "options"), SLOW_VARIANTS)
def test_jit_vmap_and_determinism(name, options):
    env = envs.make(name, **options)
    run = jax.jit(lambda k: rollout(env, k, 60, 4))
    a, b = run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(3))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    c = run(jax.random.PRNGKey(4))
    assert not np.array_equal(a.obs, c.obs)
    assert a.obs.shape == (60, 4, env.num_agents, env.obs_dim)
    assert a.state.shape == (60, 4, env.state_dim)
    assert a.reward.dtype == jnp.float32 and a.obs.dtype == jnp.float32
    # vmapped resets equal single ones.
    keys = jax.random.split(jax.random.PRNGKey(0), 4)
    batched = jax.jit(jax.vmap(env.reset))(keys)[1].obs
    single = np.stack([jax.jit(env.reset)(k)[1].obs for k in keys])
    np.testing.assert_array_equal(single, batched)


MPE_CASES = [(c, i) for c, i in zip(CASES, IDS, strict=True) if c[0].startswith("mpe/")]


# The cable-load envs have their own 10^6-step test (tests/test_cable_load.py).
@pytest.mark.parametrize(
    ("name", "options"), [c for c, _ in MPE_CASES], ids=[i for _, i in MPE_CASES]
)
def test_no_nan_over_10k_steps_256_envs(name, options):
    env = envs.make(name, **options)
    ts = jax.jit(lambda k: rollout(env, k, 10_000, 256))(jax.random.PRNGKey(0))
    finite = jax.tree.map(lambda x: bool(jnp.all(jnp.isfinite(x))), (ts.obs, ts.state, ts.reward))
    assert all(jax.tree.leaves(finite)), finite
    # Episodes ended (at the latest at the time limit) and restarted.
    assert int((ts.truncated | ts.terminated).sum()) >= 256 * (10_000 // env.max_steps)


def test_autoreset_keeps_final_observation_and_stats():
    env = envs.make("mpe/spread", max_steps=3)
    wrapped = EpisodeStats(AutoReset(env))
    state, ts = wrapped.reset(jax.random.PRNGKey(0))
    actions = jnp.zeros(env.num_agents, jnp.int32)
    total = jnp.zeros(env.num_agents)
    inner = state.env_state
    for t in range(3):
        state, ts = wrapped.step(jax.random.PRNGKey(t + 1), state, actions)
        inner, raw = env.step(jax.random.PRNGKey(0), inner, actions)  # same physics, no reset
        total += raw.reward
    assert bool(ts.truncated) and not bool(ts.terminated)
    np.testing.assert_allclose(ts.info["final_obs"], raw.obs, atol=1e-6)
    np.testing.assert_allclose(ts.info["episode_return"], total, atol=1e-5)
    assert int(ts.info["episode_length"]) == 3
    assert not np.allclose(ts.obs, raw.obs)  # a fresh episode started
    assert int(state.env_state.step) == 0 and float(state.episode_return.sum()) == 0.0


def test_team_returns_are_reported_apart():
    """Tag's adversaries and good agents have opposite rewards: their episode returns are
    reported per team besides the mean over all agents."""
    env = envs.make("mpe/tag", max_steps=50)
    venv = vectorize(env, 16)
    state, _ = venv.reset(jax.random.PRNGKey(0))
    step = jax.jit(venv.step)
    for t in range(50):
        actions = jax.random.randint(jax.random.PRNGKey(t), (16, env.num_agents), 0, 5)
        state, ts = step(jax.random.PRNGKey(t), state, actions)
    ret = ts.info["episode_return"]  # [16, 4]: 3 adversaries, 1 good agent
    assert bool(ts.truncated.all()) and np.abs(ret[:, :3]).sum() > 0 and np.abs(ret[:, 3]).sum() > 0
    np.testing.assert_allclose(ts.info["return/adversary"], ret[:, :3].mean(-1), rtol=1e-6)
    np.testing.assert_allclose(ts.info["return/good"], ret[:, 3], rtol=1e-6)


def test_termination_is_kept_apart_from_truncation():
    env = envs.make("mpe/spread", num_agents=2, terminate_on_success=True)
    state, _ = env.reset(jax.random.PRNGKey(0))
    n = env.num_agents
    state = state.replace(pos=state.pos.at[:n].set(state.pos[n:]))  # agents on the landmarks
    _, ts = env.step(jax.random.PRNGKey(0), state, jnp.zeros(n, jnp.int32))
    assert bool(ts.terminated) and not bool(ts.truncated)


def test_heterogeneous_spaces_and_padding():
    env = envs.make("mpe/tag", num_good=2, num_adversaries=2)
    assert env.obs_sizes.tolist() == [18, 18, 16, 16]
    _, ts = env.reset(jax.random.PRNGKey(0))
    assert not np.asarray(ts.obs[2:, 16:]).any()
    sl = envs.make("mpe/speaker_listener")
    assert sl.action_sizes.tolist() == [3, 5]
    _, ts = sl.reset(jax.random.PRNGKey(0))
    assert ts.action_mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]


def test_vecenv_render_is_an_rgb_frame():
    env = VecEnv(envs.make("mpe/tag"), 2)
    state, _ = env.reset(jax.random.PRNGKey(0))
    frame = env.render(state, index=1)
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 3  # something was drawn


def test_registry_errors_list_what_exists():
    with pytest.raises(ValueError, match="registered: .*mpe/spread"):
        envs.make("mpe/sprid")
    with pytest.raises(ValueError, match="unknown option.*num_agentz.*num_agents=3"):
        envs.make("mpe/spread", num_agentz=4)
    with pytest.raises(ValueError, match="local_ratio"):
        envs.make("mpe/spread", local_ratio=2.0)
    assert envs.make("mpe/spread", num_agents=5).num_agents == 5
