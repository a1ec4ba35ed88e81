"""Whole-episode parity with mpe2: copy mpe2's state after reset once, then step both with
the same random actions and never re-sync.

In float64 (mpe2's own precision) every scenario agrees to 1e-5 at every step. In float32
(our default) the stiff soft contacts of ``tag`` (margin 1e-3 against obstacles) amplify
rounding: over 100 episodes the worst deviation measured was 1.8e-5 in the last steps, so
float32 ``tag`` is held to 1e-4; the other scenarios keep 1e-5.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import envs
from tests.mpe2_sync import mpe2_parallel_env, state_from_world, world_of

EPISODES = 100
TOL = 1e-5
FLOAT32_TAG_TOL = 1e-4


def _random_actions(rng, env, ref, steps):
    """[T, N] ints or [T, N, A] floats drawn from mpe2's own action spaces."""
    if env.discrete:
        return rng.integers(0, env.action_sizes, size=(steps, env.num_agents))
    acts = np.zeros((steps, env.num_agents, env.action_dim), np.float32)
    for i, agent in enumerate(ref.possible_agents):
        d = ref.action_space(agent).shape[0]
        acts[:, i, :d] = rng.uniform(0, 1, (steps, d))
    return acts


@pytest.mark.parametrize("x64", [True, False], ids=["float64", "float32"])
@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("name", [n for n in envs.list_envs() if n.startswith("mpe/")])
def test_episode_parity_with_mpe2(name, continuous, x64):
    tol = TOL if x64 or name != "mpe/tag" else FLOAT32_TAG_TOL
    with jax.enable_x64(x64):
        _check_parity(name, continuous, tol)


def _check_parity(name, continuous, tol):
    kwargs = {"continuous_actions": continuous}
    env = envs.make(name, **kwargs)
    ref = mpe2_parallel_env(name, **kwargs)
    steps = env.max_steps

    def episode(state, actions):
        def body(state, a):
            state, ts = env.step(jax.random.PRNGKey(0), state, a)
            return state, ts

        return jax.lax.scan(body, state, actions)[1]

    run = jax.jit(episode)
    rng = np.random.default_rng(0)
    for ep in range(EPISODES):
        ref.reset(seed=ep)
        actions = _random_actions(rng, env, ref, steps)
        ours = jax.device_get(run(state_from_world(world_of(ref)), actions))
        for t in range(steps):
            acts = {
                agent: (
                    int(actions[t, i]) if env.discrete else actions[t, i, : env.action_sizes[i]]
                )
                for i, agent in enumerate(ref.possible_agents)
            }
            obs, rew, term, trunc, _ = ref.step(acts)
            where = f"{name} episode {ep} step {t}"
            for i, agent in enumerate(ref.possible_agents):
                d = env.obs_sizes[i]
                np.testing.assert_allclose(ours.obs[t, i, :d], obs[agent], atol=tol, err_msg=where)
                assert not ours.obs[t, i, d:].any(), where
                np.testing.assert_allclose(ours.reward[t, i], rew[agent], atol=tol, err_msg=where)
                assert bool(ours.terminated[t]) == term[agent], where
                assert bool(ours.truncated[t]) == trunc[agent], where
            np.testing.assert_allclose(ours.state[t], ref.state(), atol=tol, err_msg=where)
        assert not ref.agents  # mpe2 ended the episode where we truncated
