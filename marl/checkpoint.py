"""Orbax checkpoints of the whole training state (parameters, optimiser, environments,
keys), so a resumed run continues exactly as if it had never stopped. Checkpoints are
numbered by the updates done when they were saved."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization


class CheckpointError(RuntimeError):
    """No (readable) checkpoint where one was asked for."""


class CheckpointMismatch(CheckpointError):
    """A readable checkpoint of a state laid out otherwise than this code's (written by
    another version of it): not damage, so no older checkpoint is tried instead."""


def _layout(tree: Any) -> dict[str, tuple]:
    """``tree``'s leaves by path (``a/b/0``) -> shape; the same for a state and for the
    metadata Orbax saved of it."""

    def name(key) -> str:  # a GetAttrKey, DictKey, SequenceKey or FlattenedIndexKey
        return str(getattr(key, "name", getattr(key, "key", getattr(key, "idx", key))))

    return {
        "/".join(map(name, path)): tuple(getattr(leaf, "shape", ()))
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    }


class Checkpointer:
    def __init__(self, directory: Path, keep: int, create: bool = True):
        """``create=False``: read an existing directory (an error if there is none)."""
        self.directory = Path(directory).absolute()
        if not create and not self.directory.is_dir():
            raise CheckpointError(f"no checkpoints in {self.directory.parent}")
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, enable_async_checkpointing=False, create=create
            ),
            item_handlers=ocp.StandardCheckpointHandler(),
        )

    def save(self, update: int, state: Any) -> None:
        """Save the state after ``update`` updates of the run."""
        self.manager.save(update, args=ocp.args.StandardSave(state))
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def path(self, update: int) -> Path:
        return self.directory / str(update)

    def _existing(self, update: int | None) -> int:
        saved = self.manager.all_steps()
        if update is None and saved:
            return max(saved)
        if update not in saved:
            have = ", ".join(map(str, sorted(saved))) or "none"
            what = "no checkpoint" if update is None else f"no checkpoint {update}"
            raise CheckpointError(f"{what} in {self.directory} (saved: {have})")
        return update

    def load(self, update: int | None = None) -> Any:
        """The saved tree on one device, whatever devices saved it (for inspection)."""
        update = self._existing(update)
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
            self.manager.item_metadata(update),
        )
        return self.manager.restore(update, args=ocp.args.StandardRestore(target))

    def restore(self, template: Any, update: int | None = None) -> tuple[Any, int]:
        """The state saved after ``update`` updates (default: the latest), laid out like
        ``template``."""
        update = self._existing(update)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        try:
            metadata = self.manager.item_metadata(update)
            if metadata is None:
                raise ValueError("its metadata is missing")
            saved = _layout(metadata)
        except Exception as err:
            raise self._unreadable(update, err) from err
        if saved != (here := _layout(template)):
            raise self._mismatch(update, saved, here)
        try:
            return self.manager.restore(update, args=ocp.args.StandardRestore(abstract)), update
        except Exception as err:
            raise self._unreadable(update, err) from err

    def _unreadable(self, update: int, err: Exception) -> CheckpointError:
        """Orbax/TensorStore errors of every kind on damaged files, as one line."""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return CheckpointError(f"checkpoint {self.path(update)} is unreadable: {first}")

    def _mismatch(self, update: int, saved: dict, here: dict) -> CheckpointMismatch:
        def some(paths: set) -> str:
            paths = sorted(paths)
            return ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")

        only_saved, only_here = saved.keys() - here.keys(), here.keys() - saved.keys()
        found = [f"only in the checkpoint: {some(only_saved)}"] if only_saved else []
        found += [f"only in this code's state: {some(only_here)}"] if only_here else []
        found += [
            f"{p} is {saved[p]} there, {here[p]} here"
            for p in sorted(saved.keys() & here.keys())
            if saved[p] != here[p]
        ][:5]
        return CheckpointMismatch(
            f"checkpoint {self.path(update)} was written by another version of the code "
            f"({'; '.join(found)}): resume it with that version. Its policy can still be "
            "evaluated with this one (scripts/evaluate.py run=<the run>)."
        )

    def restore_policy(self, template: Any, update: int | None = None) -> tuple[Any, int]:
        """The policy of checkpoint ``update`` (default: the latest): parameters, method
        state, observation and value statistics and the update count, placed into
        ``template``; the rest (environment and optimiser state) stays the template's. So a
        policy can be evaluated, or trained further, on another environment with the same
        spaces, or on one whose state gained fields since it was trained."""
        update = self._existing(update)
        try:
            saved = self.load(update)
        except Exception as err:
            raise self._unreadable(update, err) from err
        if (there := saved["update"].shape) != (here := template.update.shape):
            raise CheckpointError(
                f"checkpoint {self.path(update)} holds {there[0]} policies (num_seeds x sweep "
                f"configurations), this run {here[0]}"
            )

        def into(target, stored, name):
            try:
                restored = serialization.from_state_dict(target, stored)
            except ValueError as err:  # keys of another policy or method
                raise CheckpointError(
                    f"checkpoint {self.path(update)} does not fit this run's policy ({name}): "
                    f"{str(err).splitlines()[0]}"
                ) from None
            for (path, t), x in zip(
                jax.tree_util.tree_leaves_with_path(target), jax.tree.leaves(restored), strict=True
            ):
                if t.shape != x.shape:
                    where = f"{name}{jax.tree_util.keystr(path)}"
                    raise CheckpointError(
                        f"checkpoint {self.path(update)} does not fit this run's policy: "
                        f"{where} is {x.shape} there, {t.shape} here"
                    )
            return jax.tree.map(lambda t, x: jax.device_put(x, t.sharding), target, restored)

        runner = template.runner.replace(
            norm=into(template.runner.norm, saved["runner"]["norm"], "runner.norm")
        )
        state = template.replace(
            params=into(template.params, saved["params"], "params"),
            method_state=into(template.method_state, saved["method_state"], "method_state"),
            value_norm=into(template.value_norm, saved["value_norm"], "value_norm"),
            update=into(template.update, saved["update"], "update"),
            runner=runner,
        )
        return state, update

    def restore_readable(self, template: Any, warn) -> tuple[Any, int] | None:
        """The newest checkpoint that restores (``None`` if none was saved). Unreadable newer
        ones are reported through ``warn(message)`` and moved to ``<run>/corrupt_checkpoints``
        (so that the run can save under their numbers again); if none is readable, a
        ``CheckpointError`` names them."""
        bad = []
        for update in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.restore(template, update)
            except CheckpointMismatch:
                raise
            except CheckpointError as err:
                warn(f"{err}; trying an older one")
                bad.append(update)
                continue
            for b in bad:
                aside = self.directory.parent / "corrupt_checkpoints" / str(b)
                aside.parent.mkdir(exist_ok=True)
                shutil.move(self.path(b), aside)
            self.manager.reload()
            return restored
        if bad:
            paths = ", ".join(str(self.path(b)) for b in bad)
            raise CheckpointError(f"no readable checkpoint: {paths}")
        return None
