"""The optimiser: Adam per parameter group, each with its own learning rate and schedule,
clipping, and the epochs and part of training in which it steps.

The policy labels its parameters (``param_groups``) and says how its groups are optimised
(``group_defaults``); ``algo.groups.<name>`` overrides that field by field. The update is

    zero the gradients of groups that do not step now
    -> clip the groups clipped together by their joint norm (``algo.max_grad_norm``)
    -> per group: its own clip (if it has a norm of its own), Adam, its learning rate

and a group that does not step keeps its parameters and Adam state bitwise unchanged (groups
that step at every epoch of the whole run skip the gating, at no cost). The
update is told where training stands through ``ctx`` (a ``Context``):
``optimizer.update(grads, opt_state, params, ctx=ctx)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from omegaconf import OmegaConf

from marl.config import AlgoConfig, GroupConfig, Schedule, ScheduleKind


def scheduled(schedule: Schedule, value: float, update: jax.Array, num_updates: int) -> jax.Array:
    """``value`` at update ``update`` (0-based) of a run of ``num_updates``."""
    if schedule.kind == ScheduleKind.linear:
        return value * (1.0 - (1.0 - schedule.end) * update / num_updates)
    if schedule.kind == ScheduleKind.exponential:
        return value * schedule.decay ** jnp.asarray(update, jnp.float32)
    return jnp.asarray(value, jnp.float32)


def check_schedule(schedule: Schedule, where: str) -> None:
    if schedule.kind == ScheduleKind.exponential and schedule.decay <= 0:
        raise ValueError(f"{where}.decay must be > 0, got {schedule.decay}")


def resolve_groups(labels: Any, defaults: dict[str, GroupConfig], algo: AlgoConfig):
    """Each group's settings: the policy's ``defaults`` updated by ``algo.groups``."""
    names = sorted(set(jax.tree.leaves(labels)))
    unknown = sorted(set(algo.groups) - set(names))
    if unknown:
        raise ValueError(
            f"algo.groups names unknown parameter group(s) {unknown}; groups are {names}"
        )
    specs = {}
    for name in names:
        base = OmegaConf.structured(defaults.get(name, GroupConfig()))
        spec = OmegaConf.to_object(OmegaConf.merge(base, algo.groups.get(name, {})))
        where = f"algo.groups.{name}"
        if spec.epoch_period < 1:
            raise ValueError(f"{where}.epoch_period must be >= 1, got {spec.epoch_period}")
        if spec.epochs is not None and not all(0 <= e < spec.epoch_period for e in spec.epochs):
            raise ValueError(
                f"{where}.epochs={spec.epochs}: each must be in [0, epoch_period={spec.epoch_period})"
            )
        if not 0.0 <= spec.start <= spec.stop <= 1.0:
            raise ValueError(
                f"{where}: need 0 <= start <= stop <= 1, got {spec.start}, {spec.stop}"
            )
        check_schedule(spec.schedule or algo.lr_schedule, f"{where}.schedule")
        specs[name] = spec
    return specs


def always_steps(spec: GroupConfig) -> bool:
    return not spec.frozen and spec.epochs is None and (spec.start, spec.stop) == (0.0, 1.0)


def steps_now(spec: GroupConfig, ctx) -> jax.Array:
    """[] bool: whether the group steps at ``ctx``'s epoch and point of training."""
    if spec.frozen:
        return jnp.array(False)
    on = (ctx.progress >= spec.start) & (ctx.progress < spec.stop)
    if spec.epochs is not None:
        on &= jnp.isin(ctx.epoch % spec.epoch_period, jnp.array(spec.epochs, jnp.int32))
    return on


def _zero_unless_stepping(spec: GroupConfig) -> optax.GradientTransformationExtraArgs:
    def update(updates, state, params=None, *, ctx, **extra):
        on = steps_now(spec, ctx)
        return jax.tree.map(lambda u: jnp.where(on, u, 0.0), updates), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def _learning_rate(value: float, schedule: Schedule, num_updates: int):
    def update(updates, state, params=None, *, ctx, **extra):
        lr = scheduled(schedule, value, ctx.update, num_updates)
        return jax.tree.map(lambda u: -lr * u, updates), state

    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


def _gated(inner: optax.GradientTransformation, spec: GroupConfig):
    """``inner`` where the group steps now; elsewhere its state stays as it was and its
    updates are -0.0 (``p + -0.0 == p`` bitwise for every float, signed zeros included)."""
    inner = optax.with_extra_args_support(inner)

    def update(updates, state, params=None, *, ctx, **extra):
        new_updates, new_state = inner.update(updates, state, params, ctx=ctx, **extra)
        on = steps_now(spec, ctx)
        new_updates = jax.tree.map(lambda u: jnp.where(on, u, -0.0), new_updates)
        new_state = jax.tree.map(lambda n, o: jnp.where(on, n, o), new_state, state)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(inner.init, update)


def make_optimizer(
    labels_fn, specs: dict[str, GroupConfig], algo: AlgoConfig, num_updates: int
) -> optax.GradientTransformationExtraArgs:
    """The optimiser over parameters labelled by ``labels_fn(params)`` with ``specs``."""

    def group(spec: GroupConfig):
        own = spec.clip and spec.max_grad_norm is not None
        own_clip = [optax.clip_by_global_norm(spec.max_grad_norm)] if own else []
        lr = algo.lr if spec.lr is None else spec.lr
        inner = optax.chain(
            *own_clip,
            optax.scale_by_adam(eps=algo.adam_eps),
            _learning_rate(lr, spec.schedule or algo.lr_schedule, num_updates),
        )
        return inner if always_steps(spec) else _gated(inner, spec)

    def clipped_together(params):
        return jax.tree.map(
            lambda g: specs[g].clip and specs[g].max_grad_norm is None, labels_fn(params)
        )

    gated = {g: s for g, s in specs.items() if not always_steps(s)}
    zero = {
        g: _zero_unless_stepping(s) if g in gated else optax.identity() for g, s in specs.items()
    }
    return optax.chain(
        *([optax.partition(zero, labels_fn)] if gated else []),
        optax.masked(optax.clip_by_global_norm(algo.max_grad_norm), clipped_together),
        optax.partition({g: group(s) for g, s in specs.items()}, labels_fn),
    )
