"""Training on several processes (hosts) at once, with ``jax.distributed``.

Each process runs the same program on its own devices; the environments (axis 1 of the
runner, after the seeds) are sharded over one mesh of every process's devices, the rest of the
state is replicated. Process 0 alone writes logs, W&B, evaluations and GIFs; every process
takes part in writing and restoring Orbax checkpoints (on a filesystem they share). Launch:

    python scripts/train.py distributed.coordinator_address=host0:1234 \
        distributed.num_processes=2 distributed.process_id=<0 or 1> ...

on each host, or ``distributed.auto=true`` where JAX finds the layout itself (SLURM, TPU pods,
Open MPI). A run resumes on the number of processes it was trained on.
"""

from __future__ import annotations

import jax
import numpy as np

from marl.config import DistributedConfig


def initialize(cfg: DistributedConfig) -> None:
    """Join the processes of ``cfg``: with a coordinator or ``auto``; otherwise this is the
    only process."""
    if not cfg.auto and cfg.coordinator_address is None:
        if (cfg.num_processes or 1) > 1:
            raise ValueError(
                f"distributed.num_processes={cfg.num_processes} needs "
                "distributed.coordinator_address (or distributed.auto=true)"
            )
        return
    if jax.distributed.is_initialized():
        return
    if not cfg.auto and (cfg.num_processes is None or cfg.process_id is None):
        raise ValueError(
            "distributed.coordinator_address needs distributed.num_processes and "
            "distributed.process_id (or use distributed.auto=true)"
        )
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU processes
    if cfg.auto:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(cfg.coordinator_address, cfg.num_processes, cfg.process_id)


def primary() -> bool:
    """Whether this process writes the run's files (process 0)."""
    return jax.process_index() == 0


def local(x):
    """A replicated array (every process holds it whole) as a local NumPy array."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    if not x.is_fully_replicated:
        raise ValueError(f"a {x.shape} array sharded over processes is not held whole here")
    return np.asarray(x.addressable_data(0))
