"""Cable-suspended load: physics against closed forms, the task's interface and options."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.cable_load import rigid
from envs.cable_load.hover import DRONE_ANCHOR, CableLoadHover
from envs.cable_load.rigid import GRAVITY, Bodies, Cables, Inertia
from envs.cable_load.track import CableLoadTrack
from envs.wrappers import to_pettingzoo
from tests.conftest import cable_experiment, compose_config

DT = CableLoadHover.physics_dt


def random_actions(env, key, batch=()):
    high = env.action_space(env.agents[0]).high
    return jax.random.uniform(key, (*batch, env.num_agents, 5), minval=-high, maxval=high)


def cable_error(env, state) -> jax.Array:
    """Largest deviation of a cable's length from its rest length (m)."""
    _, _, d = env.cables.geometry(state.bodies)
    return jnp.max(jnp.abs(jnp.linalg.norm(d, axis=-1) - env.cables.length))


# --- (a) pendulum -------------------------------------------------------------------------


def test_pendulum_period_and_energy():
    """Rotors off, load pinned: one MAV swings below its cable's anchor.

    The MAV hangs upside down (centre of mass 3 cm below the joint), so the system is a
    double pendulum: the rod (massless, length l) and the MAV (mass m, inertia I, joint 3 cm
    from its centre of mass). Its slow small-angle mode has ``l_eff = g / omega^2`` from the
    linearised equations ``M q'' + K q = 0``.
    """
    env = CableLoadHover()
    m, inertia, length, c = env.drone_mass[0], env.quad.inertia[0], 1.0, 0.03
    inertia_y = inertia[1]
    M = np.array([[m * length**2, m * length * c], [m * length * c, m * c**2 + inertia_y]])
    K = np.diag([m * GRAVITY * length, m * GRAVITY * c])
    omega2, modes = np.linalg.eig(np.linalg.solve(M, K))
    slow = np.argmin(omega2)
    l_eff = GRAVITY / omega2[slow]
    ratio = modes[1, slow] / modes[0, slow]  # MAV tilt per rod angle in the slow mode
    expected_period = 2 * np.pi * np.sqrt(l_eff / GRAVITY)

    cables = Cables(load_anchor=np.zeros((1, 3)), drone_anchor=DRONE_ANCHOR, length=np.ones(1))
    pinned = Inertia(
        inertia=jnp.array([[1.0, 1.0, 1.0], inertia]),
        inv_mass=jnp.array([0.0, 1.0 / m]),
        inv_inertia=jnp.array([[0.0, 0.0, 0.0], 1.0 / inertia]),
    )
    ey = jnp.array([0.0, 1.0, 0.0])

    def start(amplitude):
        joint = np.array([np.sin(amplitude), 0.0, -np.cos(amplitude)]) * length
        upside_down = jnp.array([0.0, 1.0, 0.0, 0.0])
        q = rigid.quat_mul(
            rigid.quat_from_axis_angle(ey, jnp.array(-ratio * amplitude)), upside_down
        )
        com = joint - rigid.quat_to_matrix(q) @ DRONE_ANCHOR
        return Bodies(
            pos=jnp.stack([jnp.zeros(3), com]),
            quat=jnp.stack([jnp.array([1.0, 0.0, 0.0, 0.0]), q]),
            vel=jnp.zeros((2, 3)),
            omega=jnp.zeros((2, 3)),
        )

    @jax.jit
    def swing(b):  # 10 s
        def body(b, _):
            b, *_ = rigid.step(
                b, pinned, cables, jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones(1, bool), DT
            )
            _, on_drone, _ = cables.geometry(b)
            return b, (jnp.arctan2(on_drone[0, 0], -on_drone[0, 2]), rigid.energy(b, pinned))

        return jax.lax.scan(body, b, None, 3000)[1]

    angle, _ = map(np.asarray, swing(start(0.05)))
    t = np.arange(1, 3001) * DT
    i = np.flatnonzero(np.sign(angle[1:]) != np.sign(angle[:-1]))
    crossings = t[i] - angle[i] * DT / (angle[i + 1] - angle[i])
    period = 2 * np.mean(np.diff(crossings))
    assert len(crossings) >= 8
    assert abs(period / expected_period - 1) < 0.02, (period, expected_period)

    b0 = start(0.3)
    _, energy = swing(b0)
    rest = -m * GRAVITY * (length + c)  # lowest energy: hanging straight down
    swing_energy = float(rigid.energy(b0, pinned)) - rest
    drift = np.max(np.abs(np.asarray(energy) - float(rigid.energy(b0, pinned)))) / swing_energy
    assert drift < 0.01, drift


# --- (b) hover ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_agents", [3, 4])
def test_hover_equilibrium_holds(num_agents):
    env = CableLoadHover(num_agents=num_agents)
    state, _ = env.reset(jax.random.PRNGKey(1))
    start = state.bodies.pos
    step = jax.jit(env.step)
    zero = jnp.zeros((num_agents, 5))
    for i in range(1000):  # 10 s
        state, ts = step(jax.random.PRNGKey(i), state, zero)
        assert not bool(ts.terminated)
    drift = float(jnp.max(jnp.linalg.norm(state.bodies.pos - start, axis=-1)))
    assert drift < 0.01, drift
    # The cables' vertical pull carries the load (its body includes half of each rod).
    _, _, d = env.cables.geometry(state.bodies)
    up = -d / jnp.linalg.norm(d, axis=-1, keepdims=True)
    lift = float(jnp.sum(state.tension * up[:, 2]))
    weight = GRAVITY / float(state.inertia.inv_mass[0])
    assert abs(lift / weight - 1) < 0.01, (lift, weight)


# --- (c, d, e) random actions ---------------------------------------------------------------------


def test_cable_length_error_under_random_actions():
    """20 s of uniform random actions in 64 envs (restarted when an episode ends)."""
    env = CableLoadHover()

    def run(key):
        def body(state, key):
            k_act, k_step, k_reset = jax.random.split(key, 3)
            nxt, ts = env.step(k_step, state, random_actions(env, k_act))
            fresh, _ = env.reset(k_reset)
            state = jax.tree.map(lambda a, b: jnp.where(ts.done, a, b), fresh, nxt)
            return state, (cable_error(env, nxt), ts.done)

        state, _ = env.reset(key)
        return jax.lax.scan(body, state, jax.random.split(key, 2000))[1]

    error, done = jax.jit(jax.vmap(run))(jax.random.split(jax.random.PRNGKey(0), 64))
    assert int(done.sum()) > 64  # random actions crash: many episodes were played
    assert float(error.max()) < 1e-3, float(error.max())


@pytest.mark.slow  # a long-run check; `pytest -m slow`
def test_no_nan_over_a_million_random_steps():
    env = CableLoadHover()
    venv = envs.wrappers.vectorize(env, 1000)

    def body(state, key):
        k_act, k_step = jax.random.split(key)
        state, ts = venv.step(k_step, state, random_actions(env, k_act, (1000,)))
        finite = (
            jnp.isfinite(ts.obs).all()
            & jnp.isfinite(ts.state).all()
            & jnp.isfinite(ts.reward).all()
        )
        return state, finite

    @jax.jit
    def run(key):
        state, _ = venv.reset(key)
        return jax.lax.scan(body, state, jax.random.split(key, 1000))

    state, finite = run(jax.random.PRNGKey(0))
    assert bool(finite.all())
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(state))


def test_vmapped_and_single_trajectories_are_identical():
    """Bodies, observations, states and terminations match bit for bit; rewards (and the
    orientation error they use) to float32 rounding, as XLA vectorises arctan2 and exp
    differently for a batch than for a scalar."""
    env = CableLoadHover(fail_step=50, disturbance=0.15, load_mass_range=(1.0, 1.8))

    def run(key):
        def body(state, key):
            k_act, k_step = jax.random.split(key)
            state, ts = env.step(k_step, state, 0.3 * random_actions(env, k_act))
            return state, (state.bodies, ts.obs, ts.state, ts.terminated, ts.reward)

        state, _ = env.reset(key)
        return jax.lax.scan(body, state, jax.random.split(key, 200))[1]

    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    batched = jax.jit(jax.vmap(run))(keys)
    single = jax.jit(run)
    for i, key in enumerate(keys):
        *exact, reward = single(key)
        jax.tree.map(
            lambda b, s, i=i: np.testing.assert_array_equal(b[i], s), batched[:-1], tuple(exact)
        )
        np.testing.assert_allclose(batched[-1][i], reward, rtol=1e-6)


# --- interface and options -------------------------------------------------------------------


def test_observations_are_decentralised_and_stacked():
    env = CableLoadHover()
    state, ts = env.reset(jax.random.PRNGKey(0))
    assert ts.obs.shape == (3, 135) and ts.state.shape == (84,)
    D = env.step_obs_dim
    np.testing.assert_array_equal(ts.obs[:, :D], ts.obs[:, D : 2 * D])  # history starts full
    nxt, ts2 = env.step(jax.random.PRNGKey(0), state, jnp.ones((3, 5)))
    np.testing.assert_array_equal(ts2.obs[:, D : 2 * D], ts.obs[:, :D])
    # Moving MAV 1 changes no other agent's observation.
    moved = state.replace(bodies=state.bodies.replace(pos=state.bodies.pos.at[2].add(0.1)))
    before, after = env._step_obs(state), env._step_obs(moved)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[2], before[2])
    assert not np.array_equal(after[1], before[1])


def test_reward_terms_at_the_goal():
    env = CableLoadHover()
    state, _ = env.reset(jax.random.PRNGKey(0))
    b = state.bodies
    at_goal = state.replace(goal_pos=b.pos[0], goal_quat=b.quat[0])
    terms = env.reward_terms(at_goal, jnp.zeros((3, 5)))
    assert float(terms["position"]) == pytest.approx(1.0)
    assert float(terms["orientation"]) == pytest.approx(1.0, abs=1e-3)
    assert float(terms["smoothness"]) == 1.0 and float(terms["body_rates"]) == 1.0
    assert 0 < float(terms["effort"]) < 1 and 0 < float(terms["downwash"]) < 1
    assert float(env.metrics(at_goal, jnp.array(False))["success"]) == 1.0
    assert float(env.reward(at_goal, jnp.zeros((3, 5)))[0]) < 0.01 * 5.0


def test_a_terminated_episode_is_no_success():
    """An episode ended by a termination while the load sits on its goal is a failure, and
    not survived."""
    for limit, ends in ((0.2, False), (50.0, True)):  # MAVs "too close" under a 50 m limit
        env = CableLoadHover(min_drone_distance=limit)
        state, _ = env.reset(jax.random.PRNGKey(0))
        b = state.bodies
        at_goal = state.replace(goal_pos=b.pos[0], goal_quat=b.quat[0])
        _, ts = env.step(jax.random.PRNGKey(1), at_goal, jnp.zeros((3, 5)))
        assert bool(ts.terminated) == ends
        assert float(ts.info["position_error"]) < 0.1
        assert float(ts.info["orientation_error_deg"]) < 10
        assert float(ts.info["success"]) == float(ts.info["survived"]) == (not ends)


def test_tilt_straight_down_is_half_a_turn():
    """A commanded acceleration below -g asks for thrust straight down: no NaN."""
    down = rigid.quat_tilt(jnp.array([0.0, 0.0, -1.0]))
    np.testing.assert_allclose(rigid.rotate_e3(down), [0.0, 0.0, -1.0], atol=1e-6)
    for z in ([0.0, 0.0, 1.0], [0.6, 0.0, 0.8], [0.0, 1e-4, -1.0]):
        z = jnp.asarray(z) / jnp.linalg.norm(jnp.asarray(z))
        np.testing.assert_allclose(rigid.rotate_e3(rigid.quat_tilt(z)), z, atol=1e-3)


def test_termination_is_not_truncation():
    env = CableLoadHover(max_steps=5)
    state, _ = env.reset(jax.random.PRNGKey(0))
    for i in range(5):
        state, ts = env.step(jax.random.PRNGKey(i), state, jnp.zeros((3, 5)))
    assert bool(ts.truncated) and not bool(ts.terminated)
    low = state.replace(bodies=state.bodies.replace(pos=state.bodies.pos.at[:, 2].add(-5.0)))
    assert bool(env.terminations(low)["ground"]) and bool(env.terminal(low))
    close = state.replace(
        bodies=state.bodies.replace(pos=state.bodies.pos.at[2].set(state.bodies.pos[1]))
    )
    assert bool(env.terminations(close)["drone_distance"])


def test_unilateral_cables_go_slack():
    """A MAV thrown toward the load: a rod stops it, a cable goes slack."""
    for unilateral in (False, True):
        env = CableLoadHover(unilateral=unilateral)
        state, _ = env.reset(jax.random.PRNGKey(0))
        _, _, d = env.cables.geometry(state.bodies)
        toward = d[0] / jnp.linalg.norm(d[0])
        state = state.replace(
            bodies=state.bodies.replace(vel=state.bodies.vel.at[1].set(3.0 * toward))
        )
        state, _ = env.step(jax.random.PRNGKey(0), state, jnp.zeros((3, 5)))
        length = float(jnp.linalg.norm(env.cables.geometry(state.bodies)[2][0]))
        if unilateral:
            assert float(state.tension[0]) == 0.0 and length < 0.99
        else:  # the rod took the blow and kept its length
            assert abs(length - 1.0) < 1e-3
        assert float(state.tension[1:].min()) > 0.0


def test_failure_disturbance_and_mass_options():
    env = envs.make("cable_load/hover4", fail_step=3, disturbance=0.15)
    state, _ = env.reset(jax.random.PRNGKey(2))
    mass = 1.0 / float(state.inertia.inv_mass[0]) - 4 * 0.0236 / 2
    assert 1.0 <= mass <= 1.8
    push = np.asarray(state.disturbance)
    assert push[2] == 0 and np.linalg.norm(push) == pytest.approx(0.15 * mass * GRAVITY, rel=1e-5)
    step = jax.jit(env.step)
    for i in range(5):
        state, ts = step(jax.random.PRNGKey(i), state, jnp.zeros((4, 5)))
    lost = int(state.fail_agent)
    assert ts.active.tolist() == [i != lost for i in range(4)]
    assert not np.asarray(ts.obs[lost]).any() and float(state.tension[lost]) == 0.0
    assert not np.asarray(state.rotor_speed[lost]).any()
    states, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 8))
    assert len(set(np.asarray(states.inertia.inv_mass[:, 0]).tolist())) == 8


def test_drawn_failures_happen_at_the_drawn_step():
    """Failure-aware training: a MAV fails in about fail_prob of the episodes, at the step
    drawn at reset (uniform over the episode), and not before."""
    env = CableLoadHover(num_agents=4, max_steps=40, fail_prob=0.5)
    states, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 400))
    drawn = np.asarray(states.fail_step)
    assert 0.4 < np.mean(drawn >= 0) < 0.6 and drawn.min() == -1 and drawn.max() < 40
    assert len(set(drawn[drawn >= 0].tolist())) > 30  # spread over the episode
    step = jax.jit(jax.vmap(env.step))
    agents = np.asarray(states.fail_agent)
    zeros = jnp.zeros((400, 4, 5))
    for t in range(40):
        states, ts = step(jax.random.split(jax.random.PRNGKey(t), 400), states, zeros)
        failed = (drawn >= 0) & (drawn <= t)
        expected = np.ones((400, 4), bool)
        expected[failed, agents[failed]] = False
        alive = ~np.asarray(ts.terminated)  # a crash ends an episode first: compare the rest
        np.testing.assert_array_equal(np.asarray(ts.active)[alive], expected[alive])


def test_a_dead_weight_mav_spins_down_and_hangs_from_its_cable():
    env = CableLoadHover(num_agents=4, fail_step=2, fail_mode="dead_weight")
    state, _ = env.reset(jax.random.PRNGKey(3))
    lost, step = int(state.fail_agent), jax.jit(env.step)
    speeds = []
    for i in range(30):
        state, ts = step(jax.random.PRNGKey(i), state, jnp.zeros((4, 5)))
        speeds.append(float(state.rotor_speed[lost].mean()))
    assert not bool(ts.active[lost]) and bool(state.attached[lost])
    # It stays on its cable (a rod here: it carries force, and its length holds).
    _, _, d = env.cables.geometry(state.bodies)
    assert float(np.linalg.norm(d[lost])) == pytest.approx(1.0, abs=1e-2)
    assert abs(float(state.tension[lost])) > 0.1
    # The rotors decay with the motor lag (tau = 0.033 s): not at once, and not held up.
    assert speeds[2] > 0.5 * speeds[0] and speeds[-1] < 0.05 * speeds[0]
    released = CableLoadHover(num_agents=4, fail_step=2)
    state, _ = released.reset(jax.random.PRNGKey(3))
    for i in range(4):
        state, _ = released.step(jax.random.PRNGKey(i), state, jnp.zeros((4, 5)))
    assert not bool(state.attached[lost]) and float(state.tension[lost]) == 0.0
    assert not np.asarray(state.rotor_speed[lost]).any()


def test_a_released_mav_falls_to_the_ground_and_lies_there():
    """So the critic's state stays bounded (it once fell on, to z = -1100 m in 15 s)."""
    env = CableLoadHover(num_agents=4, fail_step=2)
    state, _ = env.reset(jax.random.PRNGKey(3))
    lost, step = 1 + int(state.fail_agent), jax.jit(env.step)
    heights = []
    for i in range(200):
        state, _ = step(jax.random.PRNGKey(i), state, jnp.zeros((4, 5)))
        heights.append(float(state.bodies.pos[lost, 2]))
    assert heights[2] > 1.0 and heights[30] < heights[2] - 0.3  # falling freely
    assert min(heights) == 0.0 and heights[-1] == 0.0
    assert not np.asarray(state.bodies.vel[lost]).any()
    assert not np.asarray(state.bodies.omega[lost]).any()


def test_either_failure_model_is_drawn_per_episode():
    env = CableLoadHover(num_agents=4, fail_step=1, fail_mode="either")
    states, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 64))
    released = np.asarray(states.fail_released)
    assert 0.25 < released.mean() < 0.75
    step = jax.jit(jax.vmap(env.step))
    for t in range(3):
        states, _ = step(jax.random.split(jax.random.PRNGKey(t), 64), states, jnp.zeros((64, 4, 5)))
    lost = (np.arange(64), np.asarray(states.fail_agent))
    np.testing.assert_array_equal(np.asarray(states.attached)[lost], ~released)
    spinning = np.asarray(states.rotor_speed)[lost].min(-1) > 0
    np.testing.assert_array_equal(spinning, ~released)  # dead weight: spinning down


def test_a_drawn_push_has_the_drawn_size():
    env = CableLoadHover(disturbance_range=(0.05, 0.2), load_mass_range=(1.0, 1.8))
    states, _ = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 200))
    mass = 1.0 / np.asarray(states.inertia.inv_mass[:, 0]) - 3 * 0.0236 / 2
    push = np.asarray(states.disturbance)
    size = np.linalg.norm(push, axis=-1) / (mass * GRAVITY)
    assert (push[:, 2] == 0).all() and size.min() >= 0.05 and size.max() <= 0.2 + 1e-6
    assert size.max() - size.min() > 0.1  # drawn, not fixed
    # The drawn force acts on the load: with the MAVs holding still, it drifts along it.
    state = jax.tree.map(lambda x: x[0], states)
    step = jax.jit(env.step)
    start = state.bodies.pos[0]
    for i in range(50):
        state, _ = step(jax.random.PRNGKey(i), state, jnp.zeros((3, 5)))
    drift = np.asarray(state.bodies.pos[0] - start)[:2]
    assert np.dot(drift, push[0, :2]) > 0


def test_the_heterogeneous_members_parameters_reach_its_dynamics():
    """mav_0 heavier, weaker and with softer gains than the others (which stay nominal)."""
    base = CableLoadHover()
    env = CableLoadHover(member_mass=1.5, member_thrust=0.5, member_gains=0.5)
    state, _ = env.reset(jax.random.PRNGKey(0))
    nominal, _ = base.reset(jax.random.PRNGKey(0))
    mass = 1.0 / np.asarray(state.inertia.inv_mass[1:])
    np.testing.assert_allclose(mass, [1.5 * 0.6168 + 0.0118, 0.6286, 0.6286], rtol=1e-4)
    np.testing.assert_array_equal(state.inertia.inv_mass[2:], nominal.inertia.inv_mass[2:])
    # Held at rest: the heavier member's rotors carry its extra weight.
    extra = np.asarray(state.thrusts.sum(-1) - nominal.thrusts.sum(-1))
    assert extra[0] > 0.25 * 0.6168 * GRAVITY and np.allclose(extra[1:], 0, atol=1e-3)

    # Full climb: the member's rotors stop at half the thrust limit, the others' do not.
    step = jax.jit(env.step)
    climb = jnp.zeros((3, 5)).at[:, 2].set(10.0)
    peak = np.zeros((3, 4))
    s = state
    for i in range(5):
        s, _ = step(jax.random.PRNGKey(i), s, climb)
        peak = np.maximum(peak, np.asarray(s.thrusts))
    assert peak[0].max() <= 0.5 * 6.25 + 1e-4 and peak[1:].max() > 0.5 * 6.25

    # A roll-rate step: the member's softer gains give it a slower start.
    roll = jnp.zeros((3, 5)).at[:, 3].set(4.0)
    stepped = [jax.jit(e.step)(jax.random.PRNGKey(0), s0, roll)[0] for e, s0 in
               ((env, state), (base, nominal))]  # fmt: skip
    rate = [np.asarray(s.bodies.omega[1:, 0]) for s in stepped]
    assert rate[0][0] < 0.75 * rate[1][0] and np.allclose(rate[0][1:], rate[1][1:], rtol=0.05)


@pytest.mark.parametrize("trajectory", ["figure8", "circle", "steps"])
def test_track_references_and_their_metrics(trajectory):
    env = CableLoadTrack(trajectory=trajectory, size=2.0, period=4.0)
    t = np.arange(0, 8.0, env.dt)
    pos = np.stack([np.asarray(env.reference(jnp.asarray(x))[0]) for x in t])
    jumps = np.linalg.norm(np.diff(pos, axis=0), axis=-1)
    if trajectory == "steps":  # 4 corners held for a quarter period each
        assert len({tuple(p) for p in pos.round(6)}) == 4 and (jumps > 0).sum() == 7
    else:  # continuous: no step longer than the top speed allows (figure-8: a w sqrt 2)
        top_speed = 2 * np.pi / 4.0 * (np.sqrt(2) if trajectory == "figure8" else 0.5)
        assert jumps.max() <= top_speed * env.dt * 1.001
        np.testing.assert_allclose(pos[0], pos[-1] + (pos[-1] - pos[-2]), atol=1e-3)  # loops

    # The load held at rest at the first point: the metrics are its distance from the
    # reference (zero while the reference stays there).
    state, ts = env.reset(jax.random.PRNGKey(0))
    assert float(ts.info["tracking_rmse_position"]) == 0.0
    np.testing.assert_allclose(state.bodies.pos[0], pos[0], atol=1e-6)
    step = jax.jit(env.step)
    for i in range(100):
        state, ts = step(jax.random.PRNGKey(i), state, jnp.zeros((3, 5)))
    distance = np.linalg.norm(pos[1:101] - pos[0], axis=-1)
    rmse = np.sqrt(np.mean(distance**2))
    assert float(ts.info["tracking_rmse_position"]) == pytest.approx(rmse, abs=2e-3)
    assert float(ts.info["tracking_rmse_orientation_deg"]) < 0.1


def test_track_lead_shows_the_goal_ahead_and_measures_the_load_against_the_reference_now():
    """``lead`` changes the goal the team sees (the reference ``lead`` s ahead), not the
    dynamics nor the metrics (the load against the reference at the current time)."""
    base, led = CableLoadTrack(period=4.0), CableLoadTrack(period=4.0, lead=0.5)
    (s0, t0), (s1, t1) = base.reset(jax.random.PRNGKey(0)), led.reset(jax.random.PRNGKey(0))
    np.testing.assert_allclose(s1.goal_pos, led.reference(jnp.asarray(0.5))[0])
    steps = jax.jit(base.step), jax.jit(led.step)
    for i in range(50):
        (s0, t0), (s1, t1) = (
            step(jax.random.PRNGKey(i), s, jnp.zeros((3, 5)))
            for step, s in zip(steps, (s0, s1), strict=True)
        )
    np.testing.assert_allclose(s1.goal_pos, led.reference(jnp.asarray(50 * led.dt + 0.5))[0])
    np.testing.assert_array_equal(s1.bodies.pos, s0.bodies.pos)
    assert not np.allclose(t1.obs, t0.obs)  # the goal error shown
    for k in ("tracking_rmse_position", "position_error", "success"):
        np.testing.assert_allclose(t1.info[k], t0.info[k], rtol=1e-6)
    assert float(t1.info["tracking_rmse_position"]) > 0.05
    with pytest.raises(ValueError, match="lead must be >= 0"):
        CableLoadTrack(lead=-1.0)


def test_goal_height_moves_only_the_goals_height():
    """``goal_height`` draws the goal's height from its range; all else is drawn as before."""
    keys = jax.random.split(jax.random.PRNGKey(3), 64)
    default, _ = jax.jit(jax.vmap(CableLoadHover().reset))(keys)
    high, _ = jax.jit(jax.vmap(CableLoadHover(goal_height=(1.2, 1.5)).reset))(keys)
    z = np.asarray(high.goal_pos[:, 2])
    assert z.min() >= 1.2 and z.max() <= 1.5 and np.ptp(z) > 0.2
    np.testing.assert_array_equal(default.goal_pos[:, :2], high.goal_pos[:, :2])
    np.testing.assert_array_equal(default.bodies.pos, high.bodies.pos)
    assert 0.5 <= float(default.goal_pos[:, 2].min()) <= float(default.goal_pos[:, 2].max()) <= 1.5
    with pytest.raises(ValueError, match=r"track's goal is its reference.*'goal_height'"):
        CableLoadTrack(goal_height=(1.2, 1.5))  # it would have no effect
    assert "goal_height" not in envs.env_options("cable_load/track")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['goal_tilt'\]"):
        envs.make("cable_load/track", goal_tilt=0.1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_agents": 2}, "num_agents"),
        ({"member_thrust": 0.0}, "member_thrust"),
        ({"disturbance_range": (0.2, 0.1)}, "disturbance_range"),
        ({"fail_prob": 1.5}, "fail_prob"),
        ({"fail_step": 5, "fail_prob": 0.5}, "not both"),
        ({"fail_mode": "explode"}, "fail_mode"),
        ({"load_mass_range": (2.0, 1.0)}, "load_mass_range"),
        ({"max_acc": 0.0}, "max_acc"),
        ({"goal_height": (1.5, 1.2)}, "goal_height"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        CableLoadHover(**options)


def test_actions_are_clipped_to_the_box():
    env = CableLoadHover(max_acc=2.0, max_rate=1.0, action_scale=0.5)
    assert env.action_space("mav_0").high.tolist() == [4.0, 4.0, 4.0, 2.0, 2.0]
    clipped = env.clip_action(jnp.full((3, 5), 100.0))
    np.testing.assert_allclose(clipped[0], [2.0, 2.0, 2.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="outside"):
        pz = to_pettingzoo(env)
        pz.reset(seed=0)
        pz.step({a: np.full(5, 100.0, np.float32) for a in pz.agents})


def test_render_draws_the_scene():
    env = CableLoadHover()
    state, _ = env.reset(jax.random.PRNGKey(0))
    frame = env.render(state)
    assert frame.shape == (400, 400, 3) and frame.dtype == np.uint8
    colours = {tuple(c) for c in frame.reshape(-1, 3)}
    assert {(40, 80, 200), (40, 170, 60), (200, 50, 40), (30, 30, 30)} <= colours


def test_evaluation_conditions_leave_out_what_a_run_trained_with():
    """A failure- and push-aware run is evaluated on the nominal task plus each condition's
    one change: no random failure or push of its training stays on, and no mix of failure
    models (``fail_mode: either``)."""
    conditions = cable_experiment("evaluate_conditions").conditions

    trained = compose_config(["experiment=cable_team"]).env
    assert trained.options["fail_prob"] > 0 and trained.options["disturbance_range"]
    for name, options in conditions(fail=True).items():
        env = envs.make(trained.name, **{**trained.options, **options})  # as scripts/evaluate.py
        assert env.fail_prob == 0 and env.disturbance_range is None, name
        assert env.fail_step == (500 if "lost" in name else -1), name
        assert env.disturbance == (0.154 if "push" in name else 0.0), name
        if "lost" in name:  # each lost-MAV condition names its failure model
            assert env.fail_mode == ("released" if "released" in name else "dead_weight"), name


def test_every_robustness_table_method_composes_into_its_recipe():
    """``team.py``'s methods are valid configs: each nominal run trains without failures or
    pushes, each fine-tune with failures or pushes, from a nominal run of the same policy and
    channel (the control excepted: it fine-tunes on the nominal task)."""
    team = cable_experiment("team")
    BASELINE, METHODS = team.BASELINE, team.METHODS

    cfgs = {m: compose_config(overrides) for m, overrides in METHODS.items()}
    for m, cfg in cfgs.items():
        assert cfg.env.name == "cable_load/hover4", m
        options = cfg.env.options
        aware = options.get("fail_prob", 0) > 0 or bool(options.get("disturbance_range"))
        assert aware == (not m.endswith(("_nominal", "_control"))), m
        if cfg.init_from is not None:
            source = cfgs[Path(cfg.init_from).name]
            assert (cfg.policy.name, cfg.comm) == (source.policy.name, source.comm), m
    for m, baseline in BASELINE.items():
        assert cfgs[m].comm.name != "none" and cfgs[baseline].comm.name == "none", m
        assert m.rsplit("_", 1)[1] == baseline.rsplit("_", 1)[1], m  # the same recipe


def test_team_curves_draw_only_runs_that_have_logged_an_update(tmp_path):
    """A run just started (``metrics.jsonl`` created, still empty) is left out of ``curves``
    instead of failing it; a run with one update is drawn."""
    begun = cable_experiment("team").begun

    metrics = tmp_path / "metrics.jsonl"
    assert not begun(metrics)
    metrics.write_text("")
    assert not begun(metrics)
    metrics.write_text('{"update": 1, "env_steps": 32768, "return": 1.0}\n')
    assert begun(metrics)


def test_team_message_check_shows_success_and_survival():
    """The message check ("Do the teams use their messages?") has a table per rate, each
    run's sent and shuffled side by side: survival shows a reliance that success (0% both
    ways) would hide."""
    uses = cable_experiment("team").uses

    def run(success, survived):
        rates = {"success": [success, 0.01], "survived": [survived, 0.05]}
        return {"m": {"nominal": {"deterministic": rates}}}

    lines = uses(run(0.0, 0.67), run(0.0, 0.49))
    rows = [line for line in lines if line.startswith("| nominal |")]
    assert rows == ["| nominal | 0% ± 1% | 0% ± 1% |", "| nominal | 67% ± 5% | 49% ± 5% |"]
    assert uses(run(0.0, 0.67), {}) == []
