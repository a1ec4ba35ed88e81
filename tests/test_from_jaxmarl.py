"""JaxMARL environments through ``from_jaxmarl``: step-equal to JaxMARL's own ``step_env``,
terminated kept apart from truncated, action masks, and SMAX's win metric."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

import envs
from envs.wrappers import to_pettingzoo


def test_smax_matches_jaxmarls_own_step():
    env = envs.make("smax/3m")
    raw = env.env
    key = jax.random.PRNGKey(0)
    state, ts = env.reset(key)
    obs, raw_state = raw.reset(key)
    step, raw_step = jax.jit(env.step), jax.jit(raw.step_env)
    for t in range(40):
        k_act, k_step = jax.random.split(jax.random.fold_in(key, t))
        avail = raw.get_avail_actions(raw_state)
        logits = jnp.log(jnp.stack([avail[a] for a in raw.agents]).astype(jnp.float32))
        actions = jax.random.categorical(k_act, logits)  # valid actions only
        np.testing.assert_array_equal(ts.action_mask, jnp.exp(logits) > 0)
        state, ts = step(k_step, state, actions)
        obs, raw_state, reward, done, _ = raw_step(
            k_step, raw_state, {a: actions[i] for i, a in enumerate(raw.agents)}
        )
        for i, a in enumerate(raw.agents):
            np.testing.assert_array_equal(ts.obs[i], obs[a])
            assert ts.reward[i] == reward[a]
            assert bool(ts.active[i]) == (not done[a] or bool(done["__all__"]))
        np.testing.assert_array_equal(ts.state, obs["world_state"])
        if done["__all__"]:
            break
    assert t > 5


def test_smax_endings_and_the_win_metric():
    env = envs.make("smax/3m", max_steps=3)
    state, ts = env.reset(jax.random.PRNGKey(1))
    for _ in range(4):  # SMAX's own count: the step after the one that reaches max_steps
        assert not bool(ts.truncated)
        state, ts = env.step(jax.random.PRNGKey(2), state, jnp.full(3, 4))  # stop, no attack
    assert bool(ts.truncated) and not bool(ts.terminated) and float(ts.info["won"]) == 0.0
    state, _ = env.reset(jax.random.PRNGKey(1))
    inner = state.state
    enemies_dead = inner.replace(unit_health=inner.unit_health.at[3:].set(0.0))
    state = state.replace(state=enemies_dead)
    state, ts = env.step(jax.random.PRNGKey(2), state, jnp.full(3, 4))
    assert bool(ts.terminated) and not bool(ts.truncated) and float(ts.info["won"]) == 1.0


@pytest.mark.slow
def test_smax_through_pettingzoo_passes_the_api_test():
    parallel_api_test(to_pettingzoo(envs.make("smax/3m")), num_cycles=30)
