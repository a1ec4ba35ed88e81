"""Training: the jitted update, and the host loop around it.

``Learner`` holds pure functions for one seed: ``init(key)``, ``update(state)`` (a
``lax.scan`` rollout, then ``learn``) and ``learn(state, traj, carry0)``: the bootstrap
values, advantages per role, then ``algo.name``'s epochs x minibatches. ``train(cfg)`` vmaps
them over seeds, shards environments over the local devices, and runs jitted chunks of
updates; between chunks it logs, evaluates, checkpoints, and stops on NaN. Nothing here
names a method: policies plug in through ``marl.policies.base.ActorCritic``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from marl import checkpoint, distributed, evaluate
from marl.algos import ALGOS, RunningStats, actor_critic_loss, gae
from marl.config import (
    SWEEPABLE,
    AlgoConfig,
    Config,
    DistributedConfig,
    Returns,
    load_run_config,
    resume_config,
    sweep_members,
    sweep_points,
    to_yaml,
)
from marl.logging import Logger, interrupts_kept
from marl.optim import check_schedule, make_optimizer, resolve_groups, scheduled
from marl.policies import ActorCritic, Context, Observation, Role, make_policy
from marl.rollout import Normalizer, Runner, batched, is_host, make_env, rollout
from marl.sweep import write_points

Array = jax.Array


@struct.dataclass
class TrainState:
    params: Any
    method_state: Any  # the policy's state that the optimiser never sees
    opt_state: Any
    runner: Runner
    value_norm: dict[str, RunningStats]  # per role: [] running statistics of returns
    key: Array
    update: Array  # [] int32 updates done
    hyper: dict[str, Array]  # [] each: algo's numeric values (config.SWEEPABLE) this seed uses


@struct.dataclass
class Batch:
    """What the epochs learn from, ``[T, B, ...]`` (per role where a dict)."""

    obs: Observation
    action: Array
    extras: Any
    log_prob: dict
    value: dict
    advantage: dict
    target: dict


class TrainingDiverged(RuntimeError):
    """NaN or inf in the losses, parameters or method state."""


def num_updates(cfg: Config) -> int:
    """Updates in the run: ``algo.total_timesteps`` in rollouts of ``num_steps x num_envs``."""
    per_update = cfg.algo.num_steps * cfg.env.num_envs
    if cfg.algo.total_timesteps < per_update:
        raise ValueError(
            f"algo.total_timesteps={cfg.algo.total_timesteps} is less than one update "
            f"(algo.num_steps x env.num_envs = {per_update})"
        )
    return cfg.algo.total_timesteps // per_update


def unit_mask(role: Role, active: Array) -> Array:
    """[..., K] float: which of a role's units acted (active agents, or the team)."""
    if role.units == "team":
        return active.any(-1, keepdims=True).astype(jnp.float32)
    return active.astype(jnp.float32)


def advantages(
    algo: AlgoConfig,
    roles: dict[str, Role],
    reward: Array,  # [T, B, N]
    terminal: Array,  # [T, B, N] bool
    done: Array,  # [T, B] bool
    active: Array,  # [T, B, N] bool
    value: dict,  # {role: [T, B, K]} as stored (normalised if normalize_values)
    next_value: dict,
    value_norm: dict[str, RunningStats],
) -> tuple[dict, dict, dict]:
    """Per role, on its own reward (own or team mean): GAE, or the normalised Monte-Carlo
    returns of ``algo.returns=mc_normalised`` -> (advantages, targets, value_norm)."""
    adv, target, norms = {}, {}, {}
    for name, role in roles.items():
        width = 1 if role.units == "team" else reward.shape[-1]
        if value[name].shape[-1] != width:
            raise ValueError(
                f"role {name!r} ({role.units} units) needs values [..., {width}], "
                f"got {value[name].shape}"
            )
        vn = value_norm[name]
        real = vn.denormalize if algo.normalize_values else (lambda v: v)
        v, nv = real(value[name]), real(next_value[name])
        r = reward if role.reward == "own" else reward.mean(-1, keepdims=True)
        term = terminal if role.units == "agents" else terminal.all(-1, keepdims=True)
        term = jnp.broadcast_to(term, v.shape).astype(jnp.float32)
        cut = jnp.maximum(term, done[..., None].astype(jnp.float32))
        r = jnp.broadcast_to(r, v.shape)
        if algo.returns == Returns.mc_normalised:
            zero = jnp.zeros_like(v)
            g = gae(r, zero, zero, term, cut, algo.gamma, 1.0)[0]  # [T, B, K] returns
            mask = unit_mask(role, active)
            count = jnp.maximum(mask.sum((0, 1)), 1.0)  # [K]
            mean = (mask * g).sum((0, 1)) / count
            std = jnp.sqrt((mask * (g - mean) ** 2).sum((0, 1)) / count)
            t = (g - mean) / (std + 1e-5)
            a = t - v
        else:
            a, t = gae(r, v, nv, term, cut, algo.gamma, algo.gae_lambda)
        if algo.normalize_values:
            vn = vn.update(t, unit_mask(role, active))
            t = vn.normalize(t)
        adv[name], target[name], norms[name] = a, t, vn
    return adv, target, norms


class Learner:
    """Pure functions of one seed's training; ``jax.vmap`` them over seeds."""

    def __init__(self, cfg: Config, env, policy: ActorCritic):
        a, self.algo, self.policy = cfg.algo, cfg.algo, policy
        self.num_envs = cfg.env.num_envs
        self.host = is_host(env)
        self.venv = batched(env, self.num_envs, cfg.env.fixed_start)
        self.steps_per_update = a.num_steps * self.num_envs
        self.num_updates = num_updates(cfg)
        if ALGOS[a.name].single_pass and (a.update_epochs, a.num_minibatches) != (1, 1):
            raise ValueError(
                f"algo.name={a.name} makes one gradient step per rollout: set "
                f"algo.update_epochs=1 and algo.num_minibatches=1 (algo={a.name} does)"
            )
        units = self.num_envs if policy.recurrent else self.steps_per_update
        if units % a.num_minibatches:
            what = "env.num_envs" if policy.recurrent else "algo.num_steps x env.num_envs"
            raise ValueError(
                f"{what} = {units} is not divisible by algo.num_minibatches={a.num_minibatches}"
            )
        if a.returns == Returns.mc_normalised and a.normalize_values:
            raise ValueError(
                "algo.returns=mc_normalised normalises the returns itself: "
                "set algo.normalize_values=false"
            )
        if self.host and policy.pretrain is not None:
            raise ValueError(
                f"{type(policy).__name__} pretrains on sampled episodes: it needs a JAX "
                "environment, not a host (PettingZoo) one"
            )
        check_schedule(a.lr_schedule, "algo.lr_schedule")
        check_schedule(a.ent_schedule, "algo.ent_schedule")
        params = jax.eval_shape(lambda k: self._init_params(k)[0][0], jax.random.PRNGKey(0))
        self.groups = resolve_groups(policy.param_groups(params), policy.group_defaults(), a)
        self.optimizer = self.optimizer_for(a)

    def optimizer_for(self, algo: AlgoConfig):
        """The optimiser with ``algo``'s values (numbers or traced ``hyper``)."""
        return make_optimizer(self.policy.param_groups, self.groups, algo, self.num_updates)

    def hyperparameters(self, point: dict[str, float] | None = None) -> dict[str, Array]:
        """algo's numeric values, as ``TrainState.hyper``: ``point``'s (a sweep's
        ``{"algo.lr": ...}``) where it sets them, the config's elsewhere."""
        point = point or {}
        return {k: jnp.float32(point.get(f"algo.{k}", getattr(self.algo, k))) for k in SWEEPABLE}

    def _init_params(self, key: Array):
        k_env, k_params = jax.random.split(key)
        env_state, ts = self.venv.reset(k_env)
        obs = Observation.from_timestep(ts, jnp.zeros(self.num_envs, bool))
        return self.policy.init(k_params, obs), env_state, obs

    def fresh_observations(self, key: Array) -> Observation:
        """The first observations of ``num_envs`` fresh episodes (for ``policy.pretrain``)."""
        return Observation.from_timestep(self.venv.reset(key)[1], jnp.ones(self.num_envs, bool))

    def ctx(self, update: Array, epoch=0, minibatch=0) -> Context:
        return Context.at(update, self.num_updates, epoch, minibatch)

    # --- init -------------------------------------------------------------------------------

    def init(self, key: Array, hyper: dict[str, Array] | None = None) -> TrainState:
        """A seed's initial state; ``hyper``: its ``hyperparameters`` (default the config's)."""
        k_init, k_train = jax.random.split(key)
        (params, method_state), env_state, obs = self._init_params(k_init)
        if self.policy.pretrain is not None:
            k_pre = jax.random.fold_in(k_init, 1)
            params, method_state = self.policy.pretrain(
                k_pre, params, method_state, self.fresh_observations
            )
        normalizer = Normalizer(
            RunningStats.create((obs.obs.shape[-1],)),
            RunningStats.create((obs.state.shape[-1],)),
            enabled=self.algo.normalize_obs,
        )
        carry = self.policy.initial_carry((self.num_envs,))
        return TrainState(
            params=params,
            method_state=method_state,
            opt_state=self.optimizer.init(params),
            runner=Runner(env_state, obs, carry, normalizer),
            value_norm={role: RunningStats.create(()) for role in self.policy.roles},
            key=k_train,
            update=jnp.array(0, jnp.int32),
            hyper=self.hyperparameters() if hyper is None else hyper,
        )

    def restart_envs(self, state: TrainState) -> TrainState:
        """Fresh episodes (host environments cannot be checkpointed: used on resume)."""
        key, k_env = jax.random.split(state.key)
        env_state, ts = self.venv.reset(k_env)
        obs = Observation.from_timestep(ts, jnp.zeros(self.num_envs, bool))
        carry = self.policy.initial_carry((self.num_envs,))
        runner = state.runner.replace(env_state=env_state, obs=obs, carry=carry)
        return state.replace(runner=runner, key=key)

    # --- update -----------------------------------------------------------------------------

    def update(self, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        """One update: rollout (scan) + bootstrap values + advantages + epochs x minibatches."""
        key, k_roll = jax.random.split(state.key)
        runner, traj = rollout(
            self.policy,
            self.venv,
            state.params,
            state.method_state,
            state.runner,
            k_roll,
            self.algo.num_steps,
            self.ctx(state.update),
        )
        return self.learn(state.replace(runner=runner, key=key), traj, state.runner.carry)

    def learn(self, state: TrainState, traj, carry0) -> tuple[TrainState, dict[str, Array]]:
        """Advantages and the epochs on a ``[T, B]`` trajectory."""
        a, policy = replace(self.algo, **state.hyper), self.policy
        key, k_boot, k_epochs = jax.random.split(state.key, 3)
        # The truncation bootstrap: the critic on every step's final observation, in one pass.
        next_value = policy.by_role(
            policy.value(
                state.params,
                state.method_state,
                traj.carry,
                traj.final_obs,
                k_boot,
                self.ctx(state.update),
            )
        )
        adv, target, value_norm = advantages(
            a,
            policy.roles,
            traj.reward,
            traj.terminal,
            traj.done,
            traj.obs.active,
            traj.value,
            next_value,
            state.value_norm,
        )
        batch = Batch(traj.obs, traj.action, traj.extras, traj.log_prob, traj.value, adv, target)

        def epoch(carry, x):
            index, key = x
            k_shuffle, k_steps = jax.random.split(key)
            carry0_mb, minibatches = self._minibatches(k_shuffle, batch, carry0)
            steps = (jnp.arange(a.num_minibatches), carry0_mb, minibatches)
            keys = jax.random.split(k_steps, a.num_minibatches)
            return jax.lax.scan(
                lambda c, x: self._sgd_step(a, c, x, state.update, index), carry, (*steps, keys)
            )

        (params, opt_state, method_state), losses = jax.lax.scan(
            epoch,
            (state.params, state.opt_state, state.method_state),
            (jnp.arange(a.update_epochs), jax.random.split(k_epochs, a.update_epochs)),
        )
        metrics = {
            **_episode_metrics(traj),
            **jax.tree.map(lambda x: x.mean((0, 1)), losses),  # over epochs and minibatches
            **{f"rollout/{k}": v.mean((0, 1)) for k, v in traj.metrics.items()},
        }
        state = state.replace(
            params=params,
            opt_state=opt_state,
            method_state=method_state,
            value_norm=value_norm,
            key=key,
            update=state.update + 1,
        )
        return state, metrics

    def _minibatches(self, key, batch: Batch, carry0):
        """Shuffled minibatches ``[M, ...]``: over samples (feed-forward) or envs (recurrent)."""
        m = self.algo.num_minibatches
        if self.policy.recurrent:  # keep whole sequences: shuffle the env axis
            perm = permutation(key, self.num_envs)

            def split(x):  # [T, B, ...] -> [M, T, B/M, ...]
                x = jnp.take(x, perm, axis=1)
                x = x.reshape(x.shape[0], m, -1, *x.shape[2:])
                return jnp.swapaxes(x, 0, 1)

            carry = jax.tree.map(
                lambda c: jnp.take(c, perm, 0).reshape(m, -1, *c.shape[1:]), carry0
            )
            return carry, jax.tree.map(split, batch)
        perm = permutation(key, self.steps_per_update)

        def flat(x):  # [T, B, ...] -> [M, T*B/M, ...]
            x = jnp.take(x.reshape(-1, *x.shape[2:]), perm, axis=0)
            return x.reshape(m, -1, *x.shape[1:])

        carry = jax.tree.map(lambda c: jnp.broadcast_to(c[0], (m, *c.shape[1:])), carry0)
        return carry, jax.tree.map(flat, batch)

    def _sgd_step(self, algo: AlgoConfig, carry, x, update: Array, epoch: Array):
        params, opt_state, method_state = carry
        minibatch, carry0, mb, key = x
        ctx = self.ctx(update, epoch, minibatch)
        ent_coef = scheduled(algo.ent_schedule, algo.ent_coef, update, self.num_updates)
        roles = self.policy.roles

        def loss_fn(params):
            out = self.policy.evaluate(
                params, method_state, carry0, mb.obs, mb.action, mb.extras, key, ctx
            )
            log_prob, entropy, value = map(self.policy.by_role, out[:3])
            total, metrics = jnp.array(0.0), {}
            for name, role in roles.items():
                loss, m = actor_critic_loss(
                    algo,
                    ent_coef,
                    log_prob[name],
                    mb.log_prob[name],
                    mb.advantage[name],
                    entropy[name],
                    value[name],
                    mb.value[name],
                    mb.target[name],
                    unit_mask(role, mb.obs.active),
                )
                total += loss
                metrics.update({k if len(roles) == 1 else f"{k}/{name}": v for k, v in m.items()})
            extra = sum((v for k, v in out.aux.items() if k.startswith("loss/")), jnp.array(0.0))
            return total + extra, ({**metrics, **out.aux}, out.method_state)

        (loss, (metrics, method_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.optimizer_for(algo).update(grads, opt_state, params, ctx=ctx)
        params = optax.apply_updates(params, updates)
        metrics = {**metrics, "loss/total": loss, "grad_norm": optax.tree_utils.tree_norm(grads)}
        return (params, opt_state, method_state), metrics


def permutation(key: Array, n: int) -> Array:
    """A random permutation of ``range(n)`` by one sort of random bits (``jax.random.
    permutation`` sorts three times to remove the bias of ties, which 32-bit keys make
    negligible here; on the CPU it costs as much as a quarter of a minibatch step)."""
    return jnp.argsort(jax.random.bits(key, (n,)))


def _episode_metrics(traj) -> dict[str, Array]:
    """Means over the episodes that ended in this rollout (NaN if none did)."""
    done = traj.done.astype(jnp.float32)
    count = done.sum()
    out = {
        k: jnp.where(count > 0, jnp.sum(v * done) / jnp.maximum(count, 1), jnp.nan)
        for k, v in traj.info.items()
    }
    return {**out, "episodes": count}


# --- the host loop ---------------------------------------------------------------------------


def shardings(state: TrainState, devices: list, num_envs: int) -> TrainState:
    """Where each part of the (abstract) state lives: the environment batch (the runner's
    environments, inputs and recurrent state; axis 1, after the seeds) split over ``devices``
    (every process's), the rest replicated."""
    if num_envs % len(devices):
        raise ValueError(f"env.num_envs={num_envs} must be divisible by the {len(devices)} devices")
    mesh = Mesh(np.array(devices), ("envs",))
    replicated = NamedSharding(mesh, PartitionSpec())
    by_env = NamedSharding(mesh, PartitionSpec(None, "envs"))
    runner = state.runner

    def place(x):  # a leaf of the batch: [S, num_envs, ...], or shared by the envs
        return by_env if x.ndim >= 2 and x.shape[1] == num_envs else replicated

    batch = jax.tree.map(place, (runner.env_state, runner.obs, runner.carry))
    everything = jax.tree.map(lambda _: replicated, state)
    return everything.replace(
        runner=everything.runner.replace(env_state=batch[0], obs=batch[1], carry=batch[2])
    )


def _check_finite(state: TrainState, metrics: dict[str, Any], update: int) -> None:
    bad = [k for k, v in metrics.items() if k.startswith("loss/") and not np.all(np.isfinite(v))]
    for name in ("params", "method_state"):
        leaves = [
            x for x in jax.tree.leaves(getattr(state, name)) if jnp.issubdtype(x.dtype, jnp.inexact)
        ]
        if not all(np.isfinite(distributed.local(x)).all() for x in leaves):
            bad.append("parameters" if name == "params" else "method state")
    if bad:
        raise TrainingDiverged(f"non-finite {', '.join(bad)} by update {update}")


def build(cfg: Config):
    """A run's environment, policy, ``Learner`` and initial state (seeds vmapped, envs sharded
    over the devices of every process). A sweep's states are its configurations x seeds, configuration-major; each
    configuration's seeds are those of a run without the sweep."""
    env = make_env(cfg)
    points = sweep_points(cfg)
    if is_host(env) and cfg.num_seeds * len(points) != 1:
        raise ValueError(
            "host (PettingZoo) environments train one seed per run: set num_seeds=1 and "
            "sweep with a Hydra multirun (-m) instead of sweep.*"
        )
    if is_host(env) and jax.process_count() > 1:
        raise ValueError("host (PettingZoo) environments train in one process")
    policy = make_policy(cfg, env, num_updates(cfg))
    learner = Learner(cfg, env, policy)
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.num_seeds)
    keys = jnp.tile(keys, (len(points), 1))  # [P x S, 2]
    hyper = [learner.hyperparameters(p) for p in points for _ in range(cfg.num_seeds)]
    hyper = jax.tree.map(lambda *v: jnp.stack(v), *hyper)  # [P x S] each
    init = jax.vmap(learner.init)
    # A host batch lives in one Python process: its runner stays on one device.
    devices = jax.devices()[:1] if learner.host else jax.devices()
    where = shardings(jax.eval_shape(init, keys, hyper), devices, cfg.env.num_envs)
    return env, policy, learner, jax.jit(init, out_shardings=where)(keys, hyper)


def train(cfg: Config, stop_after_chunks: int | None = None, overrides: Sequence[str] = ()) -> Path:
    """Train a run, or resume ``cfg.resume``; returns its directory. A resumed run keeps its own
    config; ``overrides`` ("key=value") may extend it (``config.RESUMABLE``). See ``configs/``
    for the options. Ctrl-C (``KeyboardInterrupt``) abandons the current chunk and names the
    checkpoint that a resume starts from."""
    run_dir, resuming = Path(cfg.resume or cfg.run_dir), cfg.resume is not None
    if resuming:
        cfg, changes = resume_config(run_dir, overrides)
        trained_on = load_run_config(run_dir).distributed.num_processes or 1
    elif (run_dir / "config.yaml").exists():
        raise ValueError(f"{run_dir} already holds a run: continue it with resume={run_dir}")
    launched = cfg.distributed.coordinator_address is not None or cfg.distributed.auto
    if resuming and trained_on > 1 and not launched:
        raise ValueError(
            f"{run_dir} was trained on {trained_on} processes: resume it on as many (on each: "
            f"resume={run_dir} distributed.coordinator_address=<host:port> "
            f"distributed.num_processes={trained_on} distributed.process_id=<i>)"
        )
    distributed.initialize(cfg.distributed)
    if resuming and trained_on != jax.process_count():
        raise ValueError(
            f"{run_dir} was trained on {trained_on} process(es): resume it on as many "
            f"(this is one of {jax.process_count()})"
        )
    # The run's config records how many processes trained it, not where they ran.
    cfg = replace(cfg, distributed=DistributedConfig(num_processes=jax.process_count()))
    env, policy, learner, state = build(cfg)  # validates everything before anything is written
    update = jax.vmap(learner.update)  # traced here, so that what only the update refuses is too
    no_metrics = jax.tree.map(
        lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(update, state)[1]
    )
    primary = distributed.primary()  # process 0 writes the run's files; all save checkpoints

    total = learner.num_updates
    done = 0
    if resuming:
        ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", cfg.keep_checkpoints)
        restored = ckpt.restore_readable(state, warn=lambda m: print(f"warning: {m}"))
        if restored is not None:
            # The run's config.yaml is the truth for its hyperparameters, as for the rest.
            state, done = restored[0].replace(hyper=state.hyper), int(restored[0].update[0])
            if learner.host:
                state = jax.jit(jax.vmap(learner.restart_envs))(state)
        if done >= total:
            ckpt.close()
            print(
                f"{run_dir} finished at update {done} ({done * learner.steps_per_update:,} "
                f"env-steps); to train it longer: resume={run_dir} algo.total_timesteps=<more>"
            )
            return run_dir
        for change in changes if primary else ():
            print(f"resume: {change}")
    if cfg.init_from is not None and done == 0:  # also a resume before the first checkpoint
        state = start_from(Path(cfg.init_from), state)
    if not resuming:
        run_dir.mkdir(parents=True, exist_ok=True)
        ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", cfg.keep_checkpoints)
    if primary:
        (run_dir / "config.yaml").write_text(to_yaml(cfg))

    # Every chunk runs the same jitted program (one compile per run): ``size`` updates, of
    # which the first ``n`` are done and the rest skipped (only the last chunk skips any).
    size = math.ceil(total / cfg.logger.num_chunks)

    # The state keeps its layout; the metrics come back whole to every process.
    where = jax.tree.map(lambda x: x.sharding, state)
    replicated = NamedSharding(jax.tree.leaves(where)[0].mesh, PartitionSpec())

    @partial(jax.jit, out_shardings=(where, replicated))
    def run_chunk(state: TrainState, n: Array):
        def step(s, i):
            return jax.lax.cond(i < n, update, lambda s: (s, no_metrics), s)

        return jax.lax.scan(step, state, jnp.arange(size))

    evaluator = evaluate.Evaluator(cfg, env, policy, run_dir / "eval", total)
    logger = Logger(cfg, run_dir, total, learner.steps_per_update, done, enabled=primary)
    finished, chunks = False, 0
    try:
        with interrupts_kept() as interrupts:
            while done < total:
                if interrupts:  # a Ctrl-C that Python swallowed during the last chunk
                    raise KeyboardInterrupt
                if stop_after_chunks is not None and chunks >= stop_after_chunks:
                    logger.console(f"stopped after {chunks} chunk(s); {_resume_command(run_dir)}")
                    break
                n = min(size, total - done)
                t0 = time.perf_counter()
                new_state, metrics = run_chunk(state, jnp.int32(n))
                metrics = {k: distributed.local(v)[:n] for k, v in metrics.items()}
                _check_finite(new_state, metrics, done + n)
                state, done, chunks = new_state, done + n, chunks + 1
                logger.log_updates(metrics, time.perf_counter() - t0)
                last, boundary = done == total, math.ceil(done / size)
                evaluating = last or (
                    cfg.eval.every_chunks and boundary % cfg.eval.every_chunks == 0
                )
                if evaluating and primary:
                    tag, gif = f"update_{done}", last or cfg.eval.gif_episodes > 0
                    logger.log_eval(evaluator(held_whole(state), gif=gif, tag=tag))
                if last or boundary % cfg.checkpoint_every_chunks == 0:
                    ckpt.save(done, state)
            else:
                finished = True
    except TrainingDiverged as err:
        where = _last_checkpoint(ckpt)
        logger.console(f"[red]training stopped: {err}; {where}")
        raise TrainingDiverged(f"{err}; {where}") from None
    except KeyboardInterrupt:
        logger.console(
            f"interrupted at update {done}: the chunk in progress is abandoned; "
            f"{_last_checkpoint(ckpt)}; {_resume_command(run_dir)}"
        )
        raise
    finally:
        ckpt.close()
        logger.close(write_summary=finished)
    if finished and primary and sweep_members(cfg):
        print(f"sweep: {write_points(run_dir, cfg)}, {run_dir / 'points'}")
    return run_dir


def start_from(run: Path, state: TrainState) -> TrainState:
    """``state`` (update 0, a fresh optimiser) with the policy of ``run``'s latest checkpoint,
    each seed (and sweep configuration) from the same one there."""
    if jax.process_count() > 1:
        raise ValueError("init_from starts a run of one process (train it, then resume it)")
    ckpt = checkpoint.Checkpointer(run / "checkpoints", 1, create=False)
    try:
        restored, update = ckpt.restore_policy(state)
    finally:
        ckpt.close()
    print(f"init_from: the policy of {ckpt.path(update)}")
    return restored.replace(update=state.update)


def held_whole(state: TrainState) -> TrainState:
    """What evaluation needs (parameters, method state, observation statistics, update) as
    local arrays: process 0 evaluates alone while the others go on."""
    if jax.process_count() == 1:
        return state
    norm = jax.tree.map(distributed.local, state.runner.norm)
    return TrainState(
        params=jax.tree.map(distributed.local, state.params),
        method_state=jax.tree.map(distributed.local, state.method_state),
        opt_state=None,
        runner=Runner(None, None, None, norm),
        value_norm=None,
        key=None,
        update=distributed.local(state.update),
        hyper=None,
    )


def _resume_command(run_dir: Path) -> str:
    return f"resume with: python scripts/train.py resume={run_dir}"


def _last_checkpoint(ckpt: checkpoint.Checkpointer) -> str:
    last = ckpt.latest()
    if last is None:
        return "no checkpoint was saved yet (a resume starts from the beginning)"
    return f"the last checkpoint is {ckpt.path(last)} (update {last})"
