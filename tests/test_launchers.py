"""Hydra multiruns: the local launcher runs each configuration as a run directory; the SLURM
launcher (submitit) writes a job script that a local stand-in for SLURM runs."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY

ROOT = Path(__file__).resolve().parents[1]


def _multirun(sweep_dir: Path, *overrides: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "scripts/train.py",
            "-m",
            *TINY,
            f"hydra.sweep.dir={sweep_dir}",
            "seed=0,1",
            *overrides,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def _finished_jobs(sweep_dir: Path) -> dict[str, int]:
    """Each finished job's run directory -> its seed."""
    runs = sorted(p.parent for p in sweep_dir.glob("*/summary.json"))
    return {r.name: yaml.safe_load((r / "config.yaml").read_text())["seed"] for r in runs}


def test_the_local_launcher_runs_each_configuration_as_a_run(tmp_path):
    out = _multirun(tmp_path / "multi")
    assert out.returncode == 0, out.stderr
    assert _finished_jobs(tmp_path / "multi") == {
        "0-mpe-spread-mappo-none": 0,
        "1-mpe-spread-mappo-none": 1,
    }


SBATCH = """#!/bin/bash
# A stand-in for SLURM's sbatch on this machine: keep the job script, then run its array
# tasks once submitit has filed their pickles under the job id (after this command returns).
script="${@: -1}"
cp "$script" "$RECORD/job.sh"
tasks=$(sed -n 's/^#SBATCH --array=\\([0-9]*-[0-9]*\\).*/\\1/p' "$script")
(
  sleep 2
  for i in $(seq ${tasks%-*} ${tasks#*-}); do
    SLURM_JOB_ID=$((100 + i)) SLURM_ARRAY_JOB_ID=100 SLURM_ARRAY_TASK_ID=$i SLURM_PROCID=0 \\
    SLURM_LOCALID=0 SLURM_NODEID=0 SLURM_NTASKS=1 SLURM_JOB_NUM_NODES=1 \\
    SLURM_JOB_NODELIST=localhost bash "$script" > "$RECORD/task$i.log" 2>&1
  done
) > /dev/null 2>&1 &
echo "Submitted batch job 100"
"""
SRUN = """#!/bin/bash
# A stand-in for srun: one task, here (its options name SLURM's log files).
while [[ "$1" == --* ]]; do if [[ "$1" == --unbuffered ]]; then shift; else shift 2; fi; done
exec "$@"
"""


@pytest.mark.slow  # a submitit job in a subprocess (about 40 s); `pytest -m slow`
def test_the_slurm_launcher_writes_a_job_script_that_runs(tmp_path):
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir(), record.mkdir()
    for name, text in (("sbatch", SBATCH), ("srun", SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(stat.S_IRWXU)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record)}
    out = _multirun(
        tmp_path / "multi",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=30",
        env=env,
    )
    assert out.returncode == 0, out.stderr + "".join(
        p.read_text() for p in record.glob("task*.log")
    )
    script = (record / "job.sh").read_text()
    for line in (
        "#SBATCH --array=0-1%2",  # both jobs at once (array_parallelism: 64)
        "#SBATCH --partition=gpu",
        "#SBATCH --time=30",
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64GB",
    ):
        assert line in script
    assert "-m submitit.core._submit" in script
    subprocess.run(["bash", "-n", str(record / "job.sh")], check=True)
    assert _finished_jobs(tmp_path / "multi") == {
        "0-mpe-spread-mappo-none": 0,
        "1-mpe-spread-mappo-none": 1,
    }
