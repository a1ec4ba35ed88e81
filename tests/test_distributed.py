"""Several processes training one run with ``jax.distributed`` (two local CPU processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from marl.checkpoint import Checkpointer

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _python(code: str, devices: int, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    prelude = f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
    return subprocess.Popen(
        [sys.executable, "-c", prelude + code],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def _train(run_dir: Path, devices: int, processes: int, stop_after_chunks=None, resume=False):
    """``processes`` processes of ``devices`` CPU devices each train the tiny run (4 updates in
    2 chunks) -> each process's output."""
    port = _free_port()
    jobs = []
    for i in range(processes):
        where = (
            [
                f"distributed.coordinator_address=localhost:{port}",
                f"distributed.num_processes={processes}",
                f"distributed.process_id={i}",
            ]
            if processes > 1
            else []
        )
        overrides = [f"resume={run_dir}", *where] if resume else [f"run_dir={run_dir}", *where]
        code = (
            "from tests.conftest import compose_config, TINY; from marl.train import train; "
            f"cfg = compose_config(TINY + ['num_seeds=2', *{overrides!r}]); "
            f"train(cfg, stop_after_chunks={stop_after_chunks}, overrides={where!r})"
        )
        jobs.append(_python(code, devices))
    outputs = [job.communicate(timeout=600)[0] for job in jobs]
    for job, out in zip(jobs, outputs, strict=True):
        assert job.returncode == 0, out
    return outputs


def _params(run_dir: Path, update: int):
    return Checkpointer(run_dir / "checkpoints", 3).load(update)["params"]


def _updates(run_dir: Path) -> list[int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(x)["update"] for x in lines]


@pytest.mark.slow  # two JAX processes, each compiling alone (about 80 s); `pytest -m slow`
def test_two_processes_train_as_one_process_with_as_many_devices(tmp_path):
    """2 processes x 1 device = 1 process x 2 devices: the same parameters after 2 updates,
    only process 0 writes logs and evaluates, and the pair's checkpoint resumes (on 2
    processes only) to the same parameters after 4."""
    one = tmp_path / "one"  # one process, 2 devices
    _train(one, devices=2, processes=1)
    pair = tmp_path / "pair"  # 2 processes, 1 device each: stop after 2 updates, then resume
    first = _train(pair, devices=1, processes=2, stop_after_chunks=1)
    assert _updates(pair) == [1, 2]  # process 0 alone logs
    assert "run directory" in first[0] and "run directory" not in first[1]
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # noqa: E731
    jax.tree.map(close, _params(one, 2), _params(pair, 2))
    alone = _python(  # a run resumes on the number of processes it was trained on
        "from tests.conftest import compose_config, TINY; from marl.train import train; "
        f"train(compose_config(TINY + ['resume={pair}']))",
        devices=2,
    )
    out = alone.communicate(timeout=600)[0]
    assert alone.returncode != 0
    assert f"{pair} was trained on 2 processes: resume it on as many (on each: resume=" in out
    second = _train(pair, devices=1, processes=2, resume=True)  # from the pair's checkpoint
    assert "update 4/4" in second[0] and "update 4/4" not in second[1]
    assert _updates(pair) == [1, 2, 3, 4]
    history = (pair / "eval" / "history.jsonl").read_text().splitlines()
    assert [json.loads(x)["update"] for x in history] == [4]  # evaluated once, by process 0
    jax.tree.map(close, _params(one, 4), _params(pair, 4))
