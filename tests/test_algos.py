"""The update rules against hand computations."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from marl.algos import RunningStats, gae


def test_gae_with_termination_and_truncation():
    gamma, lam = 0.9, 0.8
    # One env, 5 steps: t=1 terminates, t=3 is truncated (bootstrap from its final obs value).
    reward = jnp.array([1.0, 2.0, 0.5, -1.0, 3.0])
    value = jnp.array([0.3, 0.1, 0.4, 0.2, 0.6])
    next_value = jnp.array([0.1, 9.0, 0.2, 0.7, 0.5])  # 9.0 must be ignored (terminal)
    terminal = jnp.array([0.0, 1.0, 0.0, 0.0, 0.0])
    done = jnp.array([0.0, 1.0, 0.0, 1.0, 0.0])
    adv, target = gae(reward, value, next_value, terminal, done, gamma, lam)

    d = [
        1.0 + 0.9 * 0.1 - 0.3,
        2.0 - 0.1,
        0.5 + 0.9 * 0.2 - 0.4,
        -1.0 + 0.9 * 0.7 - 0.2,
        3.0 + 0.9 * 0.5 - 0.6,
    ]
    a4 = d[4]
    a3 = d[3]  # episode boundary: nothing flows back from t=4
    a2 = d[2] + gamma * lam * a3
    a1 = d[1]
    a0 = d[0] + gamma * lam * a1
    np.testing.assert_allclose(adv, [a0, a1, a2, a3, a4], rtol=1e-6)
    np.testing.assert_allclose(target, np.array([a0, a1, a2, a3, a4]) + value, rtol=1e-6)


def test_running_stats_match_numpy_with_mask():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (50, 4, 3)).astype(np.float32)
    mask = rng.random((50, 4)) > 0.3
    stats = RunningStats.create((3,))
    for chunk in np.split(np.arange(50), 5):
        stats = stats.update(jnp.asarray(x[chunk]), jnp.asarray(mask[chunk]))
    np.testing.assert_allclose(stats.mean, x[mask].mean(0), rtol=1e-3)
    np.testing.assert_allclose(stats.var, x[mask].var(0), rtol=1e-3)
    np.testing.assert_allclose(stats.denormalize(stats.normalize(jnp.asarray(x))), x, atol=1e-5)


def test_schedules_per_update():
    from marl.config import Schedule, ScheduleKind
    from marl.optim import scheduled

    u = jnp.arange(5)
    np.testing.assert_allclose(scheduled(Schedule(), 2.0, u, 4), 2.0)
    linear = Schedule(ScheduleKind.linear, end=0.5)
    np.testing.assert_allclose(scheduled(linear, 2.0, u, 4), 2.0 * (1 - 0.5 * u / 4))
    exponential = Schedule(ScheduleKind.exponential, decay=0.9)
    np.testing.assert_allclose(
        scheduled(exponential, 2.0, u, 4), 2.0 * 0.9 ** np.arange(5), rtol=1e-6
    )


def test_huber_value_loss_and_a2c_actor_loss():
    from marl.algos import actor_critic_loss
    from marl.config import AlgoConfig

    ones, zeros = jnp.ones(4), jnp.zeros(4)
    value, target = jnp.array([0.0, 1.0, 5.0, -30.0]), zeros
    cfg = AlgoConfig(
        name="a2c",
        value_loss="huber",
        huber_delta=2.0,
        clip_value=False,
        normalize_advantages=False,
        vf_coef=1.0,
    )
    log_prob, adv = jnp.log(jnp.array([0.5, 0.25, 0.5, 1.0])), jnp.array([1.0, -2.0, 0.0, 3.0])
    total, m = actor_critic_loss(
        cfg, 0.0, log_prob, log_prob, adv, zeros, value, value, target, ones
    )
    huber = np.where(np.abs(value) <= 2, 0.5 * value**2, 2 * (np.abs(value) - 1))
    np.testing.assert_allclose(m["loss/value"], huber.mean(), rtol=1e-6)
    np.testing.assert_allclose(m["loss/actor"], -(log_prob * adv).mean(), rtol=1e-6)
    np.testing.assert_allclose(total, m["loss/actor"] + m["loss/value"], rtol=1e-6)
