"""Shared fixtures: tiny training configs composed through Hydra, as a user's would be.

Tests share JAX's persistent compilation cache (in the system's temporary folder, at most
2 GB): many of them compile the same small programs, and a fresh machine pays each once.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

import jax
import pytest
from hydra import compose, initialize_config_dir

from marl.config import CONFIG_DIR, Config, register_configs, to_config
from tests import methods  # noqa: F401  (registers the test methods and environment)

TINY = [
    "env.num_envs=4",
    "algo.num_steps=8",
    "algo.total_timesteps=128",  # 4 updates
    "algo.update_epochs=2",
    "algo.num_minibatches=2",
    "logger.num_chunks=2",
    "logger.progress=false",
    "logger.wandb.mode=disabled",
    "eval.episodes=4",
    "eval.gif_episodes=0",  # GIFs are tested with the evaluation script
]


jax.config.update(
    "jax_compilation_cache_dir", str(Path(tempfile.gettempdir()) / "commarl-tests-jax")
)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
jax.config.update("jax_compilation_cache_max_size", 2 * 1024**3)


def cable_experiment(module: str):
    """Import a script of ``experiments/cable_load`` (``team``, ``evaluate_conditions``)."""
    folder = str(Path(__file__).resolve().parents[1] / "experiments" / "cable_load")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(module)


def compose_config(overrides: list[str]) -> Config:
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        return to_config(compose("config", overrides=overrides))


@pytest.fixture
def tiny(tmp_path):
    """``tiny(name, *overrides) -> Config`` of a 4-update run in ``tmp_path/name``."""

    def make(name: str = "run", *overrides: str) -> Config:
        return compose_config([*TINY, f"run_dir={tmp_path / name}", *overrides])

    return make
