"""A run as a durable thing: Ctrl-C and resume, corrupted checkpoints, extending a run,
values out of range and failed starts, one compile per run, the command-line scripts."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from marl.checkpoint import Checkpointer, CheckpointError, CheckpointMismatch
from marl.cli import evaluate_main
from marl.logging import Logger
from marl.train import train
from tests.conftest import TINY, compose_config

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]


def updates(run: Path) -> list[int]:
    return [json.loads(line)["update"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def wandb_steps(run: Path, key: str = "loss/total") -> list[int]:
    """The steps of the history rows that hold ``key`` (default: the rows of updates), in every
    offline W&B segment of a run (its ``.wandb`` record logs: a 7-byte header, then 32 KiB
    blocks of records, each with a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2 as pb

    steps = []
    for path in glob.glob(str(run / "wandb" / "offline-run-*" / "*.wandb")):
        data, pos, buf = Path(path).read_bytes(), 7, b""
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
            if left < 7 or (length, kind) == (0, 0):  # block padding
                pos += left
                continue
            buf += data[pos + 7 : pos + 7 + length]
            pos += 7 + length
            if kind in (1, 4):  # a full record, or the last piece of one
                record = pb.Record.FromString(buf)
                if record.WhichOneof("record_type") == "history":
                    keys = {i.key or "/".join(i.nested_key) for i in record.history.item}
                    steps += [record.history.step.num] if key in keys else []
                buf = b""
    return steps


def corrupt(run: Path, update: int) -> None:
    """Cut every array file of a checkpoint in half."""
    for f in (run / "checkpoints" / str(update)).rglob("d/*"):
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def test_ctrl_c_then_resume_counts_each_update_once(tmp_path):
    """SIGINT mid-run: exit 130 with the resume command, no traceback; the resumed run logs
    each update once (metrics.jsonl and W&B) and ends with the uninterrupted run's parameters."""
    run = tmp_path / "interrupted"
    length = [*TINY, "algo.total_timesteps=12800", "logger.num_chunks=20", "eval.every_chunks=1"]
    proc = subprocess.Popen(
        [*TRAIN, *length, "logger.wandb.mode=offline", f"run_dir={run}"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "WANDB_SILENT": "true"},
    )
    deadline = time.time() + 300
    log = run / "metrics.jsonl"
    while not log.exists() or "\n" not in log.read_text():  # a first whole record
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert f"resume with: python scripts/train.py resume={run}\n" in out
    assert "Traceback" not in err
    assert 0 < len(updates(run)) < 400  # stopped mid-run

    resumed = train(compose_config([f"resume={run}"]))
    straight = train(compose_config([*length, f"run_dir={tmp_path / 'straight'}"]))
    assert updates(resumed) == list(range(1, 401))
    assert sorted(wandb_steps(run)) == [32 * u for u in range(1, 401)]  # each update once
    evals = wandb_steps(run, "eval/deterministic/return")  # and each evaluation once
    assert sorted(evals) == sorted(set(evals)) and max(evals) == 400 * 32
    a, b = (Checkpointer(r / "checkpoints", 3).load()["params"] for r in (resumed, straight))
    jax.tree.map(np.testing.assert_array_equal, a, b)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_ctrl_c_that_python_swallows_still_stops_the_run(tmp_path, monkeypatch):
    """A Ctrl-C whose ``KeyboardInterrupt`` is raised inside a finaliser (or a JAX callback)
    is dropped by Python with "Exception ignored in ..."; the run still stops at the next
    chunk boundary, and its resume logs each update once."""
    import marl.train

    class SigintOnCollection:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    check, calls = marl.train._check_finite, []

    def check_then_swallow_a_ctrl_c(*args):
        check(*args)
        calls.append(1)
        if len(calls) == 1:
            SigintOnCollection()  # collected at once: the interrupt is raised in __del__

    monkeypatch.setattr(marl.train, "_check_finite", check_then_swallow_a_ctrl_c)
    cfg = compose_config([*TINY, "logger.num_chunks=4", f"run_dir={tmp_path / 'run'}"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    assert updates(tmp_path / "run") == [1]  # stopped at the first boundary after it
    monkeypatch.undo()
    train(compose_config([f"resume={tmp_path / 'run'}"]))
    assert updates(tmp_path / "run") == [1, 2, 3, 4]


def test_ctrl_c_while_logging_reaches_both_logs_or_neither(tmp_path):
    """A Ctrl-C that lands between an update's line in ``metrics.jsonl`` and its W&B row waits
    for the chunk's records; the resume then sends W&B each later update once."""
    cfg = compose_config([*TINY, "logger.wandb.mode=offline", "logger.progress=false"])
    chunk = {"return": np.zeros((3, 1)), "loss/total": np.ones((3, 1))}  # 3 updates, 1 seed

    class CtrlCAtUpdate2(Logger):
        def _wandb_log(self, *args, **kwargs):
            if self.update == 2:
                os.kill(os.getpid(), signal.SIGINT)
            super()._wandb_log(*args, **kwargs)

    logger = CtrlCAtUpdate2(cfg, tmp_path, total_updates=6, steps_per_update=32)
    with pytest.raises(KeyboardInterrupt):
        logger.log_updates(chunk, seconds=1.0)
    logger.close()
    assert updates(tmp_path) == [1, 2, 3]
    logger = Logger(cfg, tmp_path, total_updates=6, steps_per_update=32, start_update=3)
    logger.log_updates(chunk, seconds=1.0)
    logger.close()
    assert updates(tmp_path) == list(range(1, 7))
    assert sorted(wandb_steps(tmp_path)) == [32 * u for u in range(1, 7)]


def test_corrupt_checkpoints_fall_back_or_are_named(tiny, capsys):
    run = train(tiny("corrupt"))  # checkpoints after updates 2 and 4
    straight = Checkpointer(run / "checkpoints", 3).load()["params"]
    corrupt(run, 4)
    train(tiny("ignored", f"resume={run}"))  # falls back to update 2, trains 3 and 4 again
    out = capsys.readouterr().out
    assert f"checkpoint {run / 'checkpoints' / '4'} is unreadable" in out
    assert "trying an older one" in out
    assert (run / "corrupt_checkpoints" / "4").is_dir() and updates(run) == [1, 2, 3, 4]
    again = Checkpointer(run / "checkpoints", 3).load()["params"]
    jax.tree.map(np.testing.assert_array_equal, straight, again)

    corrupt(run, 4)
    (run / "checkpoints" / "2" / "default" / "_METADATA").write_bytes(os.urandom(500))
    with pytest.raises(CheckpointError, match=r"no readable checkpoint: .*checkpoints/4, .*/2$"):
        train(tiny("ignored", f"resume={run}"))


def test_a_checkpoint_of_another_code_version_is_named_not_set_aside(tiny):
    """A checkpoint whose state has a field this code's has not (or lacks one, e.g. an
    environment-state field added since) is refused with what differs; it is not taken
    for damage, so nothing is moved aside and no older checkpoint is tried."""
    run = train(tiny("other_version"))
    checkpoints = Checkpointer(run / "checkpoints", 3)
    saved = checkpoints.load(4)
    saved["runner"]["retired_field"] = np.zeros(2, np.float32)
    shutil.rmtree(checkpoints.path(4))
    checkpoints.manager.reload()
    checkpoints.save(4, saved)
    checkpoints.close()
    with pytest.raises(
        CheckpointMismatch,
        match=r"checkpoints/4 was written by another version of the code "
        r"\(only in the checkpoint: runner/retired_field\): resume it with that version",
    ):
        train(tiny("ignored", f"resume={run}"))
    assert not (run / "corrupt_checkpoints").exists() and checkpoints.path(4).is_dir()


def test_resume_extends_a_run_and_refuses_other_overrides(tiny, capsys):
    run = train(tiny("extend"))
    resume = tiny("ignored", f"resume={run}")
    with pytest.raises(ValueError, match=r"cannot change on resume: algo.lr, env \(allowed"):
        train(resume, overrides=["algo.lr=0.1", "env=tag"])
    with pytest.raises(ValueError, match="can only be raised"):
        train(resume, overrides=["algo.total_timesteps=64"])
    train(resume)  # finished: says so, changes nothing
    assert "finished at update 4" in capsys.readouterr().out and updates(run) == [1, 2, 3, 4]
    train(resume, overrides=["algo.total_timesteps=256", "logger.num_chunks=4"])
    assert "algo.total_timesteps: 128 -> 256" in capsys.readouterr().out
    assert updates(run) == list(range(1, 9))
    assert "total_timesteps: 256" in (run / "config.yaml").read_text()
    assert json.loads((run / "summary.json").read_text())["updates"] == 8


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("num_seeds=0", r"num_seeds=0 \(must be >= 1\)"),
        ("algo.gamma=1.5", r"algo.gamma=1.5 \(must be in \[0, 1\]\)"),
        ("eval.episodes=0", r"eval.episodes=0 \(must be >= 1\)"),
        ("algo.lr=-1", r"algo.lr=-1.0 \(must be > 0\)"),
        ("policy.actor_hidden=[64,0]", r"policy.actor_hidden=\[64, 0\] \(must be >= 1\)"),
    ],
)
def test_values_out_of_range_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        compose_config([*TINY, override])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["num_seeds=0", "env.num_envs=0"], "error: out of range: num_seeds=0 (must be >= 1), env"),
        (["+env.options.num_agentz=4"], "error: unknown option(s) ['num_agentz']"),
        (["resume=runs/does-not-exist"], "error: no config.yaml in runs/does-not-exist"),
        (
            ["env.name=pettingzoo:pettingzoo.atari.pong_v3"],
            "needs 'multi_agent_ale_py', which is not installed: pip install \"pettingzoo[atari]\"",
        ),
    ],
)
def test_a_failed_start_writes_nothing(tmp_path, args, message):
    result = subprocess.run(
        [*TRAIN, *args, "run_dir=new"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_update_compiles_once_per_run(tiny, caplog):
    """5 updates in chunks of 3 and 2: the shorter last chunk reuses the program."""
    jax.config.update("jax_log_compiles", True)
    try:
        with caplog.at_level(logging.WARNING):
            run = train(tiny("compile", "algo.total_timesteps=160"))
    finally:
        jax.config.update("jax_log_compiles", False)
    assert updates(run) == [1, 2, 3, 4, 5]
    assert sum("Compiling jit(run_chunk)" in r.getMessage() for r in caplog.records) == 1


def test_evaluate_names_the_saved_checkpoints_writes_eval_and_has_help(tiny, capsys):
    run = train(tiny("saved"))
    shutil.rmtree(run / "eval")  # as after a run trained with evaluations off: written anew
    evaluate_main([f"run={run}", "episodes=2", "gif_episodes=0"])
    assert json.loads((run / "eval" / "evaluate_4.json").read_text())["checkpoint"] == 4
    with pytest.raises(SystemExit, match=r"error: no checkpoint 99 in .*\(saved: 2, 4\)"):
        evaluate_main([f"run={run}", "checkpoint=99"])
    shutil.rmtree(run / "checkpoints")
    with pytest.raises(SystemExit, match="error: no checkpoints in"):
        evaluate_main([f"run={run}"])
    assert not (run / "checkpoints").exists()  # evaluating creates nothing
    with pytest.raises(SystemExit) as done:
        evaluate_main(["--help"])
    assert done.value.code == 0 and "episodes=100" in capsys.readouterr().out


def test_a_multiwalker_run_is_quiet_and_films_its_episodes(tmp_path):
    """8,192 host steps of PettingZoo's multiwalker from the command line, as a user runs it
    (progress bar, offline W&B, evaluations): under 100 lines, and GIFs through its
    ``rgb_array`` render."""
    run = tmp_path / "walker"
    result = subprocess.run(
        [
            *TRAIN,
            "env=multiwalker",
            "env.num_envs=2",
            "algo.num_steps=128",
            "algo.total_timesteps=8192",
            "eval.episodes=2",
            "eval.gif_episodes=1",
            f"run_dir={run}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) < 100, "\n".join(lines[:100])
    assert updates(run) == list(range(1, 33))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval"]["deterministic"]["length"][0] > 0
    assert (run / "eval" / "update_32.gif").stat().st_size > 10_000


def test_plots_skip_updates_without_episodes_quietly(tmp_path):
    """A curve over updates in which no episode ended (NaN for every seed) draws without
    numpy's empty-slice warnings; a bad run directory is one clear error."""
    from marl.plot import plot_runs

    rows = [[None, None], [1.0, 2.0], [2.0, None]]
    (tmp_path / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"update": u + 1, "env_steps": 32 * (u + 1), "return/seeds": r}) + "\n"
            for u, r in enumerate(rows)
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plot_runs([tmp_path], tmp_path / "curve.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="no metrics.jsonl in"):
        plot_runs([tmp_path / "missing"], tmp_path / "x.png")
