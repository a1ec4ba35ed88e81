"""Orbax checkpoints of the whole training state (parameters, optimiser, environments,
keys), so a resumed run continues exactly as if it had never stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    def __init__(self, directory: Path, keep: int):
        self.directory = Path(directory).absolute()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=False
            ),
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def save(self, chunk: int, state: Any) -> None:
        """Save after ``chunk`` chunks of the run."""
        self.manager.save(chunk, args=ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def path(self, chunk: int) -> Path:
        return self.directory / str(chunk)

    def load(self, chunk: int | None = None) -> Any:
        """The saved tree on one device, whatever devices saved it (for inspection)."""
        chunk = self.latest() if chunk is None else chunk
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
            self.manager.item_metadata(chunk),
        )
        return self.manager.restore(chunk, args=ocp.args.StandardRestore(target))

    def restore(self, template: Any, chunk: int | None = None) -> tuple[Any, int]:
        """The state saved after ``chunk`` (default: the latest), laid out like ``template``."""
        chunk = self.latest() if chunk is None else chunk
        if chunk is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        return self.manager.restore(chunk, args=ocp.args.StandardRestore(abstract)), chunk
