"""The VQ symbol channel (marl/comm/vq.py) and the symbol statistics (marl/comm/symbols.py):
the straight-through gradient, the codebook's moves, dead-code restarts, resume, the
power-law fit and the mutual information."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from marl.checkpoint import Checkpointer
from marl.cli import evaluate_main
from marl.comm.symbols import fit_power_law, mutual_information, symbol_statistics
from marl.comm.vq import VQChannel, VQConfig, code_cosine, make_vq, standardised, unit
from marl.policies import Context, Observation, make_policy
from marl.rollout import make_env
from marl.train import train
from tests.conftest import compose_config

N, H = 3, 6
CTX = Context.at(0, 1)


def channel(**kw) -> tuple[VQChannel, dict]:
    module = VQChannel(VQConfig(**kw), N)
    h = jax.random.normal(jax.random.PRNGKey(0), (5, N, H))
    variables = module.init(
        {"params": jax.random.PRNGKey(1), "comm": jax.random.PRNGKey(2)}, h, None, CTX
    )
    return module, variables


def codebook(variables) -> jax.Array:
    if "method_state" in variables:
        return variables["method_state"]["codebook"]
    return variables["params"]["codebook"]


def update(module, variables, h, key=3):
    """The channel at update time (``extras`` given): (out, aux, new method state)."""
    (out, _, aux), state = module.apply(
        variables,
        h,
        None,
        CTX,
        {},
        rngs={"comm": jax.random.PRNGKey(key)},
        mutable=["method_state"],
    )
    return out, aux, state


@pytest.mark.parametrize("ema,normalise", [(True, False), (False, False), (True, True)])
def test_messages_are_codes_and_the_straight_through_gradient_reaches_the_sender(ema, normalise):
    module, variables = channel(
        ema=ema, normalise=normalise, codebook_size=4, code_dim=2, seq_len=2, restart_threshold=0
    )
    h = jax.random.normal(jax.random.PRNGKey(4), (7, N, H))
    out, _, aux = module.apply(variables, h, None, CTX)
    heard = out[..., H:].reshape(7, N, N - 1, 2, 2)  # [B, receiver, sender, L, D]
    book = np.asarray(unit(codebook(variables)) if normalise else codebook(variables))
    if normalise:  # the codes are sent at unit length
        np.testing.assert_allclose(np.linalg.norm(heard, axis=-1), 1.0, rtol=1e-6)
    distance = np.abs(np.asarray(heard)[..., None, :] - book).sum(-1).min(-1)
    assert distance.max() == 0.0  # every message vector is exactly one of the K codes
    one_hot = np.asarray(aux["symbols"])  # [B, N, L, K]
    assert one_hot.shape == (7, N, 2, 4) and (one_hot.sum(-1) == 1).all()
    # agent 1 hears agents 0 and 2: their features get gradient through the quantiser,
    # its own do not (through the message; its features pass through unquantised)
    grad = jax.grad(lambda h: module.apply(variables, h, None, CTX)[0][:, 1, H:].sum())(h)
    grad = np.abs(np.asarray(grad)).sum((0, 2))  # [N]
    assert grad[0] > 0 and grad[2] > 0 and grad[1] == 0
    encoder = jax.grad(
        lambda p: module.apply({**variables, "params": p}, h, None, CTX)[0][..., H:].sum()
    )(variables["params"])
    assert np.abs(np.asarray(encoder["Dense_0"]["kernel"])).sum() > 0


def test_codebook_loss_trains_the_codebook_and_commitment_the_encoder():
    module, variables = channel(ema=False, restart_threshold=0)
    h = jax.random.normal(jax.random.PRNGKey(4), (7, N, H))

    def losses(params):
        _, aux, _ = update(module, {**variables, "params": params}, h)
        return aux["loss/vq_codebook"], aux["loss/vq_commit"]

    g_book = jax.grad(lambda p: losses(p)[0])(variables["params"])
    g_commit = jax.grad(lambda p: losses(p)[1])(variables["params"])
    assert np.abs(g_book["codebook"]).sum() > 0 and np.abs(g_book["Dense_0"]["kernel"]).sum() == 0
    assert (
        np.abs(g_commit["codebook"]).sum() == 0 and np.abs(g_commit["Dense_0"]["kernel"]).sum() > 0
    )


def test_ema_codebook_moves_toward_its_encodings_and_dead_codes_restart():
    h = jax.random.normal(jax.random.PRNGKey(4), (64, N, H))
    for threshold in (0.0, 0.07):
        module, variables = channel(
            codebook_size=8, code_dim=4, ema_decay=0.5, restart_threshold=threshold
        )
        kernel = variables["params"]["Dense_0"]
        enc = np.asarray(h.reshape(-1, H) @ kernel["kernel"] + kernel["bias"])  # [M, D], L = 1
        book0 = np.asarray(codebook(variables))
        assign = np.argmin(((enc[:, None] - book0) ** 2).sum(-1), 1)
        share = np.bincount(assign, minlength=8) / len(assign)
        _, aux, state = update(module, variables, h)
        book1 = np.asarray(state["method_state"]["codebook"])
        dead = np.flatnonzero(0.5 / 8 + 0.5 * share < threshold)  # the EMA share after the step
        for k in np.setdiff1d(np.unique(assign), dead):
            target = enc[assign == k].mean(0)
            assert np.linalg.norm(book1[k] - target) < np.linalg.norm(book0[k] - target)
        if threshold == 0:
            continue
        # unused codes (and rarely used ones) restart at encodings of the batch
        assert np.isin(np.setdiff1d(np.arange(8), assign), dead).all() and len(dead) > 0
        assert float(aux["vq/restarted"]) == len(dead)
        for k in dead:
            assert np.abs(enc - book1[k]).sum(-1).min() < 1e-5
        np.testing.assert_allclose(np.asarray(state["method_state"]["usage"])[dead], 1 / 8)


@pytest.mark.parametrize("head_hidden", ["[]", "[8]"])
def test_heard_symbols_interact_with_the_receivers_features_only_through_a_head(head_hidden):
    """Without ``policy.head_hidden`` a message only shifts the listener's logits (their
    derivative in the speaker's input does not depend on the listener's observation); with a
    hidden head layer it does, so the listener can act on what it hears *and* sees."""
    overrides = ["env=speaker_listener", "comm=vq", f"policy.head_hidden={head_hidden}"]
    cfg = compose_config(overrides)
    env = make_env(cfg)
    policy = make_policy(cfg, env, num_updates=1)
    _, ts = env.reset(jax.random.PRNGKey(0))
    obs = Observation.from_timestep(ts, jnp.array(True))
    params, method_state = policy.init(jax.random.PRNGKey(1), obs)
    carry = policy.initial_carry(())

    def listener_logits(speaker_obs, listener_obs):
        variables = {**params, **method_state}
        both = obs.replace(obs=jnp.stack([speaker_obs, listener_obs]))
        return policy.net.apply(variables, carry, both, CTX)[1][1].sum()

    mixed = jax.jit(jax.jacfwd(jax.grad(listener_logits), argnums=1))(*ts.obs)  # [obs, obs]
    assert (np.abs(np.asarray(mixed)).max() > 1e-6) == (head_hidden != "[]")


def test_shuffled_symbols_are_the_next_environments_and_only_at_evaluation():
    """``heard=shuffled``: environment e hears what the others sent in environment e + 1, its
    own features and the symbols it records unchanged; the update and a batch of one refuse it."""
    module, variables = channel()
    h = jax.random.normal(jax.random.PRNGKey(4), (5, N, H))
    out, _, aux = module.apply(variables, h, None, CTX)
    shuffled = VQChannel(VQConfig(heard="shuffled"), N)
    out_s, _, aux_s = shuffled.apply(variables, h, None, CTX)
    np.testing.assert_array_equal(out_s[..., :H], out[..., :H])
    np.testing.assert_array_equal(out_s[..., H:], np.roll(out[..., H:], -1, axis=0))
    np.testing.assert_array_equal(aux_s["symbols"], aux["symbols"])
    assert not np.array_equal(out_s, out)
    with pytest.raises(ValueError, match="intervention for evaluation"):
        update(shuffled, variables, h)
    with pytest.raises(ValueError, match="at least 2 environments"):
        shuffled.apply(variables, h[:1], None, CTX)


def test_code_cosine_tells_codes_of_one_direction_from_spread_ones():
    one_way = jnp.outer(jnp.arange(1.0, 5.0), jnp.array([1.0, 2.0, 0.5]))  # 4 codes, one way
    assert float(code_cosine(one_way)) == pytest.approx(1.0, abs=1e-6)
    assert float(code_cosine(jnp.eye(4))) == pytest.approx(0.0, abs=1e-6)
    assert float(code_cosine(jnp.array([[1.0, 0.0], [-1.0, 0.0]]))) == pytest.approx(-1.0)


def test_standardised_encodings_spread_by_their_running_moments():
    """standardise=true: encodings that share a large common part (one direction, one symbol)
    are spread over the codes once the moments of an update are in; the rollout and the
    update's pass quantise alike (the moments move after it), and the senders still get the
    receivers' gradient."""
    h = 2.0 + 0.3 * jax.random.normal(jax.random.PRNGKey(4), (256, N, H))  # a common part
    kw = dict(codebook_size=8, code_dim=4, normalise=True, restart_threshold=0, ema_decay=0.9)
    plain, v_plain = channel(**kw)
    module, variables = channel(**kw, standardise=True)
    kernel = variables["params"]["Dense_0"]
    enc = np.asarray(h.reshape(-1, H) @ kernel["kernel"] + kernel["bias"])  # [M, D], L = 1
    acted = module.apply(variables, h, None, CTX)
    out, _, state = update(module, variables, h)
    np.testing.assert_array_equal(acted[0], out)  # the update sends the rollout's messages
    np.testing.assert_array_equal(out, plain.apply(v_plain, h, None, CTX)[0])  # no moments yet
    weight, mean, square = np.asarray(state["method_state"]["moments"])  # bias-corrected:
    np.testing.assert_allclose(mean / weight, enc.mean(0), rtol=1e-5)  # the batch's own
    np.testing.assert_allclose(square / weight - (mean / weight) ** 2, enc.var(0), rtol=1e-3)
    z = np.asarray(standardised(jnp.asarray(enc), state["method_state"]["moments"]))
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(z.std(0), 1.0, rtol=1e-3)
    assert float(code_cosine(unit(jnp.asarray(enc)))) > 0.95  # one way before
    assert abs(float(code_cosine(unit(jnp.asarray(z))))) < 0.05  # spread after

    def perplexity(symbols):  # [..., K] one-hot
        share = np.asarray(symbols).reshape(-1, 8).mean(0)
        return np.exp(-np.sum(share * np.log(np.maximum(share, 1e-12))))

    moved = {**variables, **state}
    assert perplexity(acted[2]["symbols"]) < 1.5  # one symbol of 8 before the moments
    assert perplexity(module.apply(moved, h, None, CTX)[2]["symbols"]) > 6  # after
    grad = jax.grad(lambda h: module.apply(moved, h, None, CTX)[0][:, 1, H:].sum())(h)
    grad = np.abs(np.asarray(grad)).sum((0, 2))  # [N]: agent 1 hears 0 and 2
    assert grad[0] > 0 and grad[2] > 0 and grad[1] == 0


def test_bad_vq_configs_are_refused():
    env = type("Env", (), {"num_agents": 2})()
    with pytest.raises(ValueError, match="needs comm.ema=true"):
        make_vq(VQConfig(ema=False), env)
    with pytest.raises(ValueError, match="restart_threshold must be in"):
        make_vq(VQConfig(codebook_size=4, restart_threshold=0.5), env)
    with pytest.raises(ValueError, match="at least 2 agents"):
        make_vq(VQConfig(), type("Env", (), {"num_agents": 1})())
    with pytest.raises(ValueError, match="heard must be one of"):
        make_vq(VQConfig(heard="muted"), env)


def test_vq_training_resumes_bitwise_and_reports_symbols(tiny):
    """The EMA codebook, usage and encodings' moments (method state) survive a checkpoint and
    resume bitwise; the evaluation's symbol statistics include the mutual information with the goal."""
    vq = ("env=speaker_listener", "comm=vq", "comm.standardise=true", "num_seeds=2")
    straight = train(tiny("straight", *vq))
    stopped = train(tiny("stopped", *vq), stop_after_chunks=1)
    resumed = train(tiny("ignored", f"resume={stopped}"))
    a, b = (Checkpointer(run / "checkpoints", 3).load() for run in (straight, resumed))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    state = a["method_state"]["method_state"]["channel"]
    assert not np.array_equal(state["codebook"][0], state["codebook"][1])  # per seed
    assert np.all(state["moments"][:, 0] > 0)  # [S, 3, D]: moved by the updates
    final = json.loads((straight / "summary.json").read_text())["eval"]["deterministic"]
    stats = final["statistics"]
    assert np.shape(stats["symbols/mi/target"]) == (2, 2)  # [seeds, speaker and listener]
    assert np.shape(stats["symbols/perplexity"]) == (2, 2)
    assert np.shape(stats["vq/code_cosine"]) == (2,) and np.all(
        np.abs(stats["vq/code_cosine"]) <= 1
    )
    # The trained policy evaluated with its messages shuffled; training refuses the option.
    shuffled = ["episodes=4", "gif_episodes=0", "comm_options.heard=shuffled", "tag=shuffled"]
    evaluate_main([f"run={straight}", *shuffled])
    assert (straight / "eval" / "shuffled.json").exists()
    with pytest.raises(SystemExit, match=r"comm_options: \['hear'\] are not options of comm=vq"):
        evaluate_main([f"run={straight}", "comm_options.hear=shuffled"])
    with pytest.raises(SystemExit, match=r"comm_options: \['name'\] are not options"):
        evaluate_main([f"run={straight}", "comm_options.name=graph"])  # the channel is the run's
    with pytest.raises(ValueError, match="intervention for evaluation"):
        train(tiny("refused", *vq, "comm.heard=shuffled"))
    assert not (straight.parent / "refused").exists()


def test_power_law_fits_recover_a_zipf_exponent():
    rng = np.random.default_rng(0)
    for s in (1.0, 1.5):
        ranks = np.arange(1, 1001)
        p = ranks**-s / np.sum(ranks**-s)
        counts = np.sort(np.bincount(rng.choice(1000, 200_000, p=p), minlength=1000))[::-1]
        fit = fit_power_law(counts, min_count=20)
        assert abs(fit["alpha_mle"] - s) < 0.1, fit
        assert abs(fit["slope_lsq"] - s) < 0.1, fit


def test_mutual_information_and_symbol_statistics():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, 3000)
    noise = rng.integers(0, 8, 3000)
    symbols = np.stack([target, noise], 1)[:, :, None]  # agent 0 names the target
    stats = symbol_statistics(symbols, 8, {"target": target})
    h = -np.sum(np.bincount(target) / 3000 * np.log2(np.bincount(target) / 3000))
    np.testing.assert_allclose(stats["symbols/mi/target"][0], h, rtol=1e-9)
    assert stats["symbols/mi/target"][1] < 0.02 and stats["symbols/mi_shuffled/target"][0] < 0.02
    np.testing.assert_array_equal(stats["symbols/dead_codes"], [5, 0])
    np.testing.assert_allclose(stats["symbols/perplexity"], [2**h, 8], rtol=1e-2)
    assert mutual_information(target, target) == pytest.approx(h)


@pytest.mark.parametrize("name", ["mpe/speaker_listener", "mpe/reference"])
def test_muted_words_are_spoken_but_never_heard(name):
    """``mute``: the no-communication baseline of the VQ experiments; the goal is reported
    as the task variable ``task/target`` either way."""
    import envs

    words = {
        "mpe/speaker_listener": (slice(8, 11), jnp.array([2, 0])),
        "mpe/reference": (slice(11, 21), jnp.array([45, 47])),
    }
    where, actions = words[name]
    heard = []
    for mute in (False, True):
        env = envs.make(name, mute=mute)
        state, _ = env.reset(jax.random.PRNGKey(0))
        state, ts = env.step(jax.random.PRNGKey(1), state, actions)
        heard.append(np.abs(np.asarray(ts.obs)[:, where]).sum())
        np.testing.assert_array_equal(ts.info["task/target"], state.goal)
    assert heard[0] > 0 and heard[1] == 0
