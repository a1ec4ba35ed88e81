"""The trainer end to end on tiny runs: determinism, resume, devices, config errors, logging,
checkpoints and NaN stops, evaluation (the run lifecycle: test_lifecycle.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException

from marl.checkpoint import Checkpointer, CheckpointError
from marl.cli import evaluate_main
from marl.train import TrainingDiverged, build, train
from tests.conftest import TINY, cable_experiment, compose_config

ROOT = Path(__file__).resolve().parents[1]


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def params(run_dir: Path):
    return Checkpointer(run_dir / "checkpoints", 3).load()["params"]


def test_same_seed_same_metrics(tiny):
    a = metrics(train(tiny("a", "num_seeds=2")))
    b = metrics(train(tiny("b", "num_seeds=2")))
    assert len(a) == 4 and a == b
    assert a[0]["loss/total/seeds"][0] != a[0]["loss/total/seeds"][1]  # seeds differ


def test_resume_continues_exactly(tiny):
    """Everything in the state, method state included (the probe channel keeps an EMA per
    seed), continues bitwise as if the run had never stopped."""
    probe = ("comm.name=probe", "num_seeds=2")
    straight = train(tiny("straight", *probe))
    stopped = train(tiny("stopped", *probe), stop_after_chunks=1)
    assert Checkpointer(stopped / "checkpoints", 3).latest() == 2  # updates
    resumed = train(tiny("ignored", f"resume={stopped}"))
    assert resumed == stopped
    a, b = (Checkpointer(run / "checkpoints", 3).load() for run in (straight, resumed))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert metrics(straight) == metrics(resumed)
    ema = a["method_state"]["method_state"]["channel"]["ema"]  # [seeds, H]
    assert np.abs(ema).min() > 0 and not np.array_equal(ema[0], ema[1])


def test_init_from_starts_from_the_policy_of_another_run(tiny, tmp_path):
    """init_from: update 0 with the other run's latest policy (parameters, method state,
    observation and value statistics), also when resumed before its first checkpoint; a run
    it does not fit is refused before anything is written."""
    probe = ("comm.name=probe", "num_seeds=2", "algo.normalize_obs=true")
    source = Checkpointer(train(tiny("source", *probe)) / "checkpoints", 3).load()
    start = (*probe, f"init_from={tmp_path / 'source'}", "+algo.groups.critic.frozen=true")
    stopped = train(tiny("tuned", *start), stop_after_chunks=0)  # no checkpoint yet
    tuned = Checkpointer(train(tiny("_", f"resume={stopped}")) / "checkpoints", 3).load()
    assert [m["update"] for m in metrics(stopped)] == [1, 2, 3, 4]
    critic = (s["params"]["params"]["critic"] for s in (source, tuned))
    jax.tree.map(np.testing.assert_array_equal, *critic)  # frozen: still the source's
    channel = (s["method_state"]["method_state"]["channel"]["ema"] for s in (source, tuned))
    assert not np.array_equal(*channel)  # trained on from there
    for stats in (lambda s: s["runner"]["norm"]["obs"], lambda s: s["value_norm"]["agents"]):
        a, b = (stats(s)["count"] for s in (source, tuned))  # [seeds]; each from 1e-4
        np.testing.assert_allclose(b, 2 * a - 1e-4, rtol=1e-6)  # 4 more updates' samples
    with pytest.raises(CheckpointError, match="holds 2 policies .*, this run 1"):
        train(tiny("seeds", *start, "num_seeds=1"))
    with pytest.raises(
        CheckpointError, match=r"does not fit this run's policy: params.*\(2, 16\) here"
    ):
        train(tiny("sizes", *start, "policy.actor_hidden=[16]"))
    assert not (tmp_path / "seeds").exists() and not (tmp_path / "sizes").exists()


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tiny):
    run = train(tiny("nan"), stop_after_chunks=1)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("lr: 0.00025", "lr: 1.0e+38"))
    with pytest.raises(
        TrainingDiverged,
        match=r"non-finite .*parameters.*last checkpoint is .*checkpoints/2 \(update 2\)",
    ):
        train(tiny("ignored", f"resume={run}"))
    assert Checkpointer(run / "checkpoints", 3).latest() == 2


def _train_in_subprocess(tmp_path: Path, name: str, devices: int) -> Path:
    run_dir = tmp_path / name
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests.conftest import compose_config, TINY; "
        f"from marl.train import train; import jax; assert jax.device_count() == {devices}; "
        f"train(compose_config(TINY + ['run_dir={str(run_dir)}', 'num_seeds=2']))"
    )
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=600)
    return run_dir


def test_two_devices_match_one(tmp_path):
    one = _train_in_subprocess(tmp_path, "one", 1)
    two = _train_in_subprocess(tmp_path, "two", 2)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
        params(one),
        params(two),
    )
    for a, b in zip(metrics(one), metrics(two), strict=True):
        np.testing.assert_allclose(a["loss/total/seeds"], b["loss/total/seeds"], rtol=1e-4)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algo.lrr=0.1", r"Key 'lrr' not in 'AlgoConfig'"),
        ("+algo.lrr=0.1", r"Key 'lrr' not in 'AlgoConfig'"),
        (
            "algo.lr=fast",
            r"Value 'fast' of type 'str' could not be converted to Float\s+full_key: algo.lr",
        ),
        (
            "policy.activation=relux",
            r"Invalid value 'relux', expected one of \[tanh, relu, gelu, elu\]",
        ),
        ("env.num_envs=3.5", r"could not be converted to Integer\s+full_key: env.num_envs"),
    ],
)
def test_bad_config_keys_and_types(override, message):
    with pytest.raises((ConfigCompositionException, OmegaConfBaseException)) as err:
        compose_config([*TINY, override])
    assert re.search(message, f"{err.value}\n{err.value.__cause__}")


@pytest.mark.parametrize("override", ["algo.lrr=0.1", "+algo.lrr=0.1"])
def test_cli_prints_the_config_error(override, tmp_path):
    """Hydra's own error, and ours for the key Hydra's hint adds: no traceback, nothing written."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), override],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Key 'lrr' not in 'AlgoConfig'" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_default_run_directory_names_the_environment_and_policy():
    assert re.fullmatch(
        r"runs/\d{8}-\d{6}-mpe-tag-ippo", compose_config(["env=tag", "policy=ippo"]).run_dir
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("env.name=mpe/sprid", r"unknown environment 'mpe/sprid'; registered: .*mpe/spread"),
        ("+env.options.num_agentz=4", r"unknown option\(s\) \['num_agentz'\].*num_agents=3"),
        ("policy.name=mapo", r"unknown policy 'mapo'; policy options are \[.*'mappo'.*\]"),
        ("algo.num_minibatches=3", r"not divisible by algo.num_minibatches=3"),
        ("+algo.groups.edges.lr=0.1", r"unknown parameter group\(s\) \[.edges.\]"),
    ],
)
def test_bad_names_are_reported_with_what_exists(tiny, override, message):
    with pytest.raises(ValueError, match=message):
        train(tiny("bad", override))


def test_evaluate_script_writes_table_and_gif(tiny, capsys):
    run = train(tiny("eval", "num_seeds=2"))
    evaluate_main([f"run={run}", "episodes=6", "gif_episodes=1"])
    out = capsys.readouterr().out
    assert "deterministic" in out and "stochastic" in out and "±" in out
    result = json.loads((run / "eval" / "evaluate_4.json").read_text())
    assert result["seeds"] == 2 and len(result["deterministic"]["per_seed"]["return"]) == 2
    gif = Path(result["gif"])
    assert gif.exists() and gif.stat().st_size > 1000
    # A larger team: its observations are wider, so the policy does not fit.
    with pytest.raises(
        SystemExit, match=r"does not fit this run's policy: .* is \(2, 18\) there, \(2, 24\) here"
    ):
        evaluate_main([f"run={run}", "episodes=2", "env_options.num_agents=4"])


@pytest.mark.slow  # GRU and continuous actions each have a ratio test in the default suite; `pytest -m slow`
def test_recurrent_continuous_mappo_runs(tiny):
    """Recurrent policy with a channel (stored messages) through training and evaluation."""
    run = train(
        tiny(
            "gru",
            "policy.recurrent=true",
            "comm.name=random",
            "+env.options.continuous_actions=true",
            "algo.normalize_obs=true",
            "algo.normalize_values=true",
        )
    )
    assert np.isfinite(metrics(run)[-1]["loss/total"])


@pytest.mark.slow  # five cable compiles; `pytest -m slow`
@pytest.mark.parametrize(
    "method",
    [
        ["experiment=cable_team", "policy.critic_hidden=[16]"],
        ["experiment=cable_team", "comm=vq", "policy.critic_hidden=[16]"],
        ["experiment=cable_team", "policy=hammer", "comm=messenger"],
        ["experiment=cable_team", "policy=centralised"],
        ["experiment=cable_team_commformer", "policy.n_embd=16"],
    ],
    ids=["mappo", "vq", "hammer", "centralised", "commformer"],
)
def test_the_cable_team_trains_with_each_method(tiny, method):
    """``experiment=cable_team`` (4 MAVs, failure- and push-aware), shrunk, per method."""
    small = ["env.num_envs=4", "+env.options.max_steps=10", "eval.episodes=1"]
    run = train(tiny("team", *method, *small))
    assert all(np.isfinite(r["loss/total"]) for r in metrics(run))


@pytest.mark.slow  # the longest test; `pytest -m slow`
def test_cable_hover_experiment_trains_and_evaluates_under_other_conditions(tiny, capsys):
    """``experiment=cable_hover`` (shrunk), then the evaluation CLI with a disturbance."""
    run = train(
        tiny(
            "cable",
            "experiment=cable_hover",
            "env.num_envs=4",
            "policy.actor_hidden=[16]",
            "policy.critic_hidden=[16]",
            "+env.options.max_steps=20",
            "eval.episodes=2",
        )
    )
    records = metrics(run)
    assert all(np.isfinite(r["loss/total"]) for r in records)
    assert "success" in json.loads((run / "summary.json").read_text())["eval"]["deterministic"]
    # GIFs are tested on mpe/spread (test_evaluate_script...); the cable renderer has its own.
    evaluate_main(
        [f"run={run}", "episodes=2", "gif_episodes=0", "env_options.disturbance=0.15", "tag=push"]
    )
    result = json.loads((run / "eval" / "push.json").read_text())
    assert result["env_options"]["disturbance"] == 0.15 and "success" in result["deterministic"]
    with pytest.raises(SystemExit, match="unknown option"):
        evaluate_main([f"run={run}", "episodes=2", "env_options.wind=1.0"])
    # Zero-shot on the moving reference: the same spaces, another environment state.
    evaluate_main([f"run={run}", "episodes=2", "gif_episodes=0", "env_name=cable_load/track"])
    result = json.loads((run / "eval" / "evaluate_4.json").read_text())
    assert "tracking_rmse_position" in result["deterministic"]
    # The conditions' cache: an evaluation is reused only under the same options and overrides.
    evaluate_once = cable_experiment("evaluate_conditions").evaluate_once

    saved = run / "eval" / "once.json"
    once = lambda *overrides: evaluate_once(run, "once", 2, {"disturbance": 0.15}, *overrides)  # noqa: E731
    assert once("gif_episodes=0")["overrides"] == ["gif_episodes=0"]
    written = saved.stat().st_mtime_ns
    assert once("gif_episodes=0")["env_options"]["disturbance"] == 0.15
    assert saved.stat().st_mtime_ns == written  # reused
    track = once("gif_episodes=0", "env_name=cable_load/track")
    assert "tracking_rmse_position" in track["deterministic"] and saved.stat().st_mtime_ns > written
    assert "tracking_rmse_position" not in once("gif_episodes=0")["deterministic"]


def test_a_fixed_log_std_stays_where_it_started_while_the_mean_learns(tiny):
    """``policy.fixed_log_std=true``: the actor's mean trains, its log-std keeps its value
    bitwise (no gradient, so Adam leaves it); without it the log-std moves."""
    continuous = ["+env.options.continuous_actions=true", "policy.log_std_init=-0.5"]
    for fixed in (True, False):
        cfg = tiny(f"fixed_{fixed}", *continuous, f"policy.fixed_log_std={fixed}")
        start = build(cfg)[3].params["params"]
        end = Checkpointer(train(cfg) / "checkpoints", 3).load()["params"]["params"]
        assert np.all(np.asarray(end["log_std"]) == np.float32(-0.5)) == fixed
        moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != b)), start, end)
        assert all(jax.tree.leaves({k: v for k, v in moved.items() if k != "log_std"}))
