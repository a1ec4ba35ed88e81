"""Grid Predator-Prey and Predator-Capture-Prey: observations, moves, rewards, endings."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.predator_prey import GridState

UP, RIGHT, DOWN, LEFT, STAY, CAPTURE = range(6)
KEY = jax.random.PRNGKey(0)


def at(pos, prey, step=0) -> GridState:
    n = len(pos)
    return GridState(
        jnp.array(pos, jnp.int32),
        jnp.array(prey, jnp.int32),
        jnp.zeros(n, bool),
        jnp.zeros(n, bool),
        jnp.array(step, jnp.int32),
    )


def window(env, obs, i) -> np.ndarray:
    """Agent i's window [3, 3, 29]."""
    return np.asarray(obs[i]).reshape(env.window, env.window, env.cell_dim)


def test_observation_layout():
    env = envs.make("predator_prey/pp")
    state = at([[0, 0], [0, 0], [2, 2]], [1, 1])
    obs = env._obs(state)
    assert obs.shape == (3, 9 * 29)
    w = window(env, obs, 0)  # at the corner: row -1 and column -1 are outside
    outside = np.zeros((3, 3), bool)
    outside[0, :] = outside[:, 0] = True
    np.testing.assert_array_equal(w[..., env.outside_class], outside)
    assert w[1, 1, 0] == 1 and w[1, 2, 1] == 1 and w[2, 2, 6] == 1  # cells 0, 1 and 6
    assert w[1, 1, env.predator_class] == 2  # two predators share the cell: a count
    assert w[2, 2, env.prey_class] == 1 and w[..., env.prey_class].sum() == 1
    w2 = window(env, obs, 2)  # in the middle: the prey up-left, nothing outside
    assert w2[0, 0, env.prey_class] == 1 and not w2[..., env.outside_class].any()
    assert w2[1, 1, 12] == 1 and w2[..., : env.capture_class].sum() == 9  # cell indices only


def test_moves_rewards_freezing_and_the_end():
    env = envs.make("predator_prey/pp")
    state = at([[0, 0], [1, 2], [4, 4]], [1, 1])
    state, ts = env.step(KEY, state, jnp.array([UP, LEFT, DOWN]))  # off-grid moves do nothing
    np.testing.assert_array_equal(state.pos, [[0, 0], [1, 1], [4, 4]])
    np.testing.assert_allclose(ts.reward, [-0.05, 0.0, -0.05])
    assert state.reached.tolist() == [False, True, False] and not ts.terminated
    state, ts = env.step(KEY, state, jnp.array([DOWN, UP, LEFT]))  # agent 1 stays on the prey
    np.testing.assert_array_equal(state.pos, [[1, 0], [1, 1], [4, 3]])
    np.testing.assert_allclose(ts.reward, [-0.05, 0.0, -0.05])
    state = state.replace(pos=jnp.array([[1, 0], [1, 1], [1, 2]]))
    state, ts = env.step(KEY, state, jnp.array([RIGHT, STAY, LEFT]))
    assert bool(ts.terminated) and not bool(ts.truncated) and float(ts.info["success"]) == 1.0
    np.testing.assert_allclose(ts.reward, 0.0)


def test_time_limit_truncates():
    env = envs.make("predator_prey/pp", max_steps=20)
    state = at([[0, 0], [0, 1], [0, 2]], [4, 4], step=19)
    state, ts = env.step(KEY, state, jnp.array([STAY] * 3))
    assert bool(ts.truncated) and not bool(ts.terminated) and float(ts.info["success"]) == 0.0


def test_capture_agent_is_blind_and_must_capture():
    env = envs.make("predator_prey/pcp")
    assert env.agents == ("predator_0", "predator_1", "capture_0") and env.action_dim == 6
    state = at([[1, 1], [1, 1], [1, 2]], [1, 1])
    obs = env._obs(state)
    blind = window(env, obs, 2)
    np.testing.assert_array_equal(blind[..., env.capture_class :], -1.0)  # no classes
    assert blind[1, 1, 7] == 1 and blind[..., : env.capture_class].sum() == 9  # but where
    assert window(env, obs, 0)[1, 2, env.capture_class] == 1  # predators see it
    state = state.replace(reached=jnp.array([True, True, False]))
    state, ts = env.step(KEY, state, jnp.array([STAY, STAY, CAPTURE]))  # not on the prey
    assert not state.captured.any()
    np.testing.assert_allclose(ts.reward, [0.0, 0.0, -0.05])
    state, ts = env.step(KEY, state, jnp.array([STAY, STAY, LEFT]))  # reaches: still -0.05
    np.testing.assert_allclose(ts.reward, [0.0, 0.0, -0.05])
    state, ts = env.step(KEY, state, jnp.array([STAY, STAY, UP]))  # frozen on the prey
    np.testing.assert_array_equal(state.pos[2], [1, 1])
    assert not bool(ts.terminated)
    state, ts = env.step(KEY, state, jnp.array([STAY, STAY, CAPTURE]))
    assert bool(ts.terminated) and state.captured.tolist() == [False, False, True]
    np.testing.assert_allclose(ts.reward, 0.0)


def test_random_starts_are_distinct_cells():
    env = envs.make("predator_prey/pp")
    states, _ = jax.vmap(env.reset)(jax.random.split(KEY, 256))
    cells = np.concatenate([states.pos, states.prey[:, None]], 1) @ np.array([5, 1])  # [B, 4]
    assert all(len(set(c)) == 4 for c in cells.tolist())
    assert len(np.unique(cells[:, 0])) == 25  # every cell is used


@pytest.mark.parametrize(
    ("options", "message"),
    [({"num_predators": 0}, "at least one agent"), ({"dim": 1}, "need 4 cells")],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        envs.make("predator_prey/pp", **options)
