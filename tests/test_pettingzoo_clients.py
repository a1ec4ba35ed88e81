"""The PettingZoo view under the clients that copy environments: SuperSuit's vector
environments (no torch needed), pickling and multiprocessing."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from contextlib import contextmanager
from copy import deepcopy

import jax
import numpy as np
import pytest
import supersuit as ss

import envs
from envs.wrappers import to_pettingzoo


def vector(view, copies: int = 8, num_cpus: int = 0):
    """SuperSuit's usual pipeline: one vector entry per agent, ``copies`` pickled copies."""
    return ss.concat_vec_envs_v1(
        ss.pettingzoo_env_to_vec_env_v1(view), copies, num_cpus=num_cpus, base_class="gymnasium"
    )


def distinct(obs: np.ndarray, copies: int) -> int:
    """How many different starts ``copies`` environments show (rows: copies x agents)."""
    return len({row.tobytes() for row in obs.reshape(copies, -1)})


def test_copies_draw_their_own_episodes_unless_seeded():
    venv = vector(to_pettingzoo(envs.make("mpe/spread")))
    actions = np.zeros(venv.num_envs, np.int64)
    obs, _ = venv.reset()
    assert distinct(obs, 8) == 8
    for _ in range(25):  # spread's episodes are 25 steps: the last step auto-resets
        obs, _, terminated, truncated, _ = venv.step(actions)
    assert truncated.all() and not terminated.any()
    assert distinct(obs, 8) == 8  # the new episodes differ too

    first, _ = venv.reset(seed=3)
    again, _ = venv.reset(seed=3)
    other = vector(to_pettingzoo(envs.make("mpe/spread")))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, other.reset(seed=3)[0])
    assert distinct(first, 8) == 8  # SuperSuit seeds copy i with seed + i


def rollout(view, actions: np.ndarray) -> list:
    out = []
    for a in actions:
        if not view.agents:
            out.append(view.reset())
        out.append(view.step({agent: int(a[i]) for i, agent in enumerate(view.agents)}))
    return out


def assert_same(a, b) -> None:
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_pickled_copy_steps_like_its_original():
    view = to_pettingzoo(envs.make("mpe/spread"))
    actions = np.random.default_rng(0).integers(0, 5, (60, 3))
    copy = pickle.loads(pickle.dumps(view))
    assert copy.env is not view.env
    assert_same(view.reset(seed=5), copy.reset(seed=5))
    assert_same(rollout(view, actions), rollout(copy, actions))

    # Mid-episode, a copy continues the episode (spread's steps are deterministic) and
    # draws its own key for the next one.
    view.reset(seed=1)
    view_steps = rollout(view, actions[:7])
    snapshot = deepcopy(view)
    assert_same(rollout(view, actions[7:20]), rollout(snapshot, actions[7:20]))
    np.testing.assert_array_equal(view.state(), snapshot.state())
    assert len(view_steps) == 7 and view.agents  # still the first episode
    assert not np.array_equal(view.reset()[0]["agent_0"], snapshot.reset()[0]["agent_0"])


@pytest.mark.parametrize("name", envs.list_envs())
def test_every_environment_can_be_copied(name):
    """A copy rebuilt from its pickle (SMAX from its factory: JaxMARL's wrappers do not
    unpickle) starts like its original under one seed."""
    view = to_pettingzoo(envs.make(name))
    copy = pickle.loads(pickle.dumps(view))
    assert_same(copy.reset(seed=2), view.reset(seed=2))


def test_the_view_steps_like_the_jax_environment():
    """The packed host transfer keeps every leaf: floats to rounding (one program vs two),
    integers and booleans exactly."""
    env = envs.make("cable_load/hover", fail_step=3)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    view = to_pettingzoo(env)
    key, sub = jax.random.split(jax.random.PRNGKey(7))
    state, ts = reset(sub)
    obs, _ = view.reset(seed=7)
    actions = np.random.default_rng(1).uniform(-1, 1, (10, env.num_agents, env.action_dim))
    for a in actions.astype(np.float32):
        for agent, o in obs.items():
            np.testing.assert_allclose(o, ts.obs[env.agent_index(agent)], rtol=1e-5, atol=1e-6)
        key, sub = jax.random.split(key)
        state, ts = step(sub, state, a)
        obs, rewards, _, _, infos = view.step({n: a[env.agent_index(n)] for n in view.agents})
        for agent, r in rewards.items():
            np.testing.assert_allclose(r, ts.reward[env.agent_index(agent)], rtol=1e-5)
        assert view.agents == [n for n in view.possible_agents if ts.active[env.agent_index(n)]]
        info = next(iter(infos.values()))
        for k, v in ts.info.items():
            if np.issubdtype(v.dtype, np.floating):
                np.testing.assert_allclose(info[k], v, rtol=1e-5, atol=1e-6)
            else:
                assert info[k] == v.tolist()
    assert len(view.agents) == env.num_agents - 1  # the failed MAV dropped out


def count_compiles(caplog, fn) -> int:
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            caplog.clear()
            fn()
    finally:
        jax.config.update("jax_log_compiles", False)
    return sum(
        r.getMessage().startswith(("Compiling jit(reset)", "Compiling jit(step)"))
        for r in caplog.records
    )


def test_copies_share_their_compiled_functions(caplog):
    # A configuration no other test compiles in this process.
    view = to_pettingzoo(envs.make("mpe/spread", num_agents=6, local_ratio=0.3))
    first = count_compiles(caplog, lambda: rollout(view, np.zeros((3, 6), int)))
    assert first == 2  # reset and step
    copies = vector(view)
    assert count_compiles(caplog, lambda: copies.reset() and copies.step(np.zeros(48, int))) == 0
    rebuilt = to_pettingzoo(envs.make("mpe/spread", num_agents=6, local_ratio=0.3))
    assert count_compiles(caplog, lambda: rollout(rebuilt, np.zeros((3, 6), int))) == 0


@contextmanager
def start_method(name: str):
    """SuperSuit's workers (and their shared memory) use the global start method."""
    before = multiprocessing.get_start_method()
    multiprocessing.set_start_method(name, force=True)
    try:
        yield
    finally:
        multiprocessing.set_start_method(before, force=True)


def test_forked_workers_fail_clearly_and_spawned_ones_work():
    view = to_pettingzoo(envs.make("mpe/spread"))
    view.reset()  # JAX has started in this process
    with (
        start_method("fork"),
        pytest.warns(RuntimeWarning, match="os.fork"),  # JAX's own warning
        pytest.raises(RuntimeError, match="forked from one in which JAX had started.*spawn"),
    ):
        vector(view, copies=2, num_cpus=2)

    with start_method("spawn"):
        venv = vector(view, copies=2, num_cpus=2)
    try:
        obs, _ = venv.reset()
        assert distinct(obs, 2) == 2
        obs, *_ = venv.step(np.zeros(6, np.int64))
        assert obs.shape == (6, 18)
        first, _ = venv.reset(seed=4)
        np.testing.assert_array_equal(first, vector(view, copies=2).reset(seed=4)[0])
    finally:
        venv.close()
