"""Training: the jitted PPO update, and the host loop around it.

``PPO`` holds pure functions for one seed: ``init(key)``, ``learn(state, traj, carry0)``
(GAE + epochs x minibatches) and ``update`` (a ``lax.scan`` rollout, then ``learn``). ``train(cfg)`` vmaps them
over seeds, shards environments over the local devices, and runs jitted chunks of updates;
between chunks it logs, evaluates, checkpoints, and stops on NaN.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from envs.wrappers import vectorize
from marl import checkpoint, evaluate
from marl.config import Config, load_run_config, to_yaml
from marl.logging import Logger
from marl.policies import ActorCritic, Observation, make_policy
from marl.ppo import RunningStats, gae, ppo_loss
from marl.rollout import HostRollout, Normalizer, Runner, is_host, jax_rollout, make_env

Array = jax.Array


@struct.dataclass
class TrainState:
    params: Any
    opt_state: Any
    runner: Runner
    value_norm: RunningStats  # [] running statistics of returns (used if normalize_values)
    key: Array
    update: Array  # [] int32 updates done


class TrainingDiverged(RuntimeError):
    """NaN or inf in the losses or parameters."""


class PPO:
    """Pure functions of one seed's training; ``jax.vmap`` them over seeds."""

    def __init__(self, cfg: Config, env, policy: ActorCritic):
        a, self.algo, self.policy = cfg.algo, cfg.algo, policy
        self.num_envs = cfg.env.num_envs
        self.host = is_host(env)
        self.venv = None if self.host else vectorize(env, self.num_envs)
        self.steps_per_update = a.num_steps * self.num_envs
        self.num_updates = a.total_timesteps // self.steps_per_update
        if self.num_updates < 1:
            raise ValueError(
                f"algo.total_timesteps={a.total_timesteps} is less than one update "
                f"(algo.num_steps x env.num_envs = {self.steps_per_update})"
            )
        units = self.num_envs if policy.recurrent else self.steps_per_update
        if units % a.num_minibatches:
            what = "env.num_envs" if policy.recurrent else "algo.num_steps x env.num_envs"
            raise ValueError(
                f"{what} = {units} is not divisible by algo.num_minibatches={a.num_minibatches}"
            )
        self.optimizer = self._optimizer()

    def _optimizer(self) -> optax.GradientTransformation:
        a = self.algo
        per_update = a.update_epochs * a.num_minibatches

        def rate(lr: float):
            if not a.anneal_lr:
                return lr
            return lambda count: lr * (1.0 - (count // per_update) / self.num_updates)

        groups = {"default", *a.group_lr}
        inner = {g: optax.adam(rate(a.group_lr.get(g, a.lr)), eps=a.adam_eps) for g in groups}

        def labels(params):  # groups without their own rate use algo.lr
            named = self.policy.param_labels(params)
            return jax.tree.map(lambda g: g if g in a.group_lr else "default", named)

        return optax.chain(
            optax.clip_by_global_norm(a.max_grad_norm),
            optax.multi_transform(inner, labels),
        )

    # --- init -------------------------------------------------------------------------------

    def init(self, key: Array, first_obs=None) -> TrainState:
        """One seed's state; ``first_obs`` is given for host environments."""
        k_env, k_params, k_train = jax.random.split(key, 3)
        if self.host:
            env_state, obs = None, first_obs
        else:
            env_state, ts = self.venv.reset(k_env)
            obs = Observation.from_timestep(ts, jnp.zeros(self.num_envs, bool))
        params = self.policy.init(k_params, obs)
        labels = set(jax.tree.leaves(self.policy.param_labels(params)))
        unknown = set(self.algo.group_lr) - labels
        if unknown:
            raise ValueError(
                f"algo.group_lr names unknown parameter group(s) {sorted(unknown)}; groups are {sorted(labels)}"
            )
        normalizer = Normalizer(
            RunningStats.create((obs.obs.shape[-1],)),
            RunningStats.create((obs.state.shape[-1],)),
            enabled=self.algo.normalize_obs,
        )
        runner = Runner(env_state, obs, self.policy.initial_carry((self.num_envs,)), normalizer)
        return TrainState(
            params=params,
            opt_state=self.optimizer.init(params),
            runner=runner,
            value_norm=RunningStats.create(()),
            key=k_train,
            update=jnp.array(0, jnp.int32),
        )

    # --- update -----------------------------------------------------------------------------

    def update(self, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        """One PPO update on a JAX environment: rollout (scan) + GAE + epochs x minibatches."""
        key, k_roll = jax.random.split(state.key)
        carry0 = state.runner.carry
        runner, traj = jax_rollout(
            self.policy, self.venv, state.params, state.runner, k_roll, self.algo.num_steps
        )
        return self.learn(state.replace(runner=runner, key=key), traj, carry0)

    def learn(self, state: TrainState, traj, carry0) -> tuple[TrainState, dict[str, Array]]:
        """GAE and the PPO epochs on a ``[T, B]`` trajectory."""
        a = self.algo
        vn = state.value_norm
        real = vn.denormalize if a.normalize_values else (lambda v: v)
        terminal = traj.terminal.astype(jnp.float32)
        cut = jnp.maximum(terminal, traj.done[..., None].astype(jnp.float32))
        adv, target = gae(
            traj.reward,
            real(traj.value),
            real(traj.next_value),
            terminal,
            cut,
            a.gamma,
            a.gae_lambda,
        )
        mask = traj.obs.active.astype(jnp.float32)
        if a.normalize_values:
            vn = vn.update(target, mask)
            target = vn.normalize(target)
        batch = (traj.obs, traj.action, traj.log_prob, traj.value, adv, target)

        def epoch(carry, key):
            minibatches = self._minibatches(key, batch, carry0)
            return jax.lax.scan(self._sgd_step, carry, minibatches)

        key, k_epochs = jax.random.split(state.key)
        (params, opt_state), losses = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(k_epochs, a.update_epochs)
        )
        metrics = {**_episode_metrics(traj), **jax.tree.map(jnp.mean, losses)}
        state = state.replace(
            params=params, opt_state=opt_state, value_norm=vn, key=key, update=state.update + 1
        )
        return state, metrics

    def _minibatches(self, key, batch, carry0):
        """Shuffled minibatches ``[M, ...]``: over samples (feed-forward) or envs (recurrent)."""
        m = self.algo.num_minibatches
        if self.policy.recurrent:  # keep whole sequences: shuffle the env axis
            perm = jax.random.permutation(key, self.num_envs)

            def split(x):  # [T, B, ...] -> [M, T, B/M, ...]
                x = jnp.take(x, perm, axis=1)
                x = x.reshape(x.shape[0], m, -1, *x.shape[2:])
                return jnp.swapaxes(x, 0, 1)

            carry = jax.tree.map(
                lambda c: jnp.take(c, perm, 0).reshape(m, -1, *c.shape[1:]), carry0
            )
            return carry, jax.tree.map(split, batch)
        perm = jax.random.permutation(key, self.steps_per_update)

        def flat(x):  # [T, B, ...] -> [M, T*B/M, ...]
            x = jnp.take(x.reshape(-1, *x.shape[2:]), perm, axis=0)
            return x.reshape(m, -1, *x.shape[1:])

        carry = jax.tree.map(lambda c: jnp.broadcast_to(c[0], (m, *c.shape[1:])), carry0)
        return carry, jax.tree.map(flat, batch)

    def _sgd_step(self, carry, minibatch):
        params, opt_state = carry
        carry0, (obs, action, old_log_prob, old_value, adv, target) = minibatch

        def loss_fn(params):
            log_prob, entropy, value, aux = self.policy.evaluate(params, carry0, obs, action)
            loss, metrics = ppo_loss(
                self.algo,
                log_prob,
                old_log_prob,
                adv,
                entropy,
                value,
                old_value,
                target,
                obs.active.astype(jnp.float32),
            )
            extra = sum((v for k, v in aux.items() if k.startswith("loss/")), jnp.array(0.0))
            return loss + extra, {**metrics, **aux}

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state), {
            **metrics,
            "loss/total": loss,
            "grad_norm": optax.tree_utils.tree_norm(grads),
        }


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


def shard(state: TrainState, num_envs: int) -> TrainState:
    """Put the environment axis (axis 1, after seeds) of the runner across local devices."""
    devices = jax.local_devices()
    if len(devices) == 1:
        return state
    if num_envs % len(devices):
        raise ValueError(f"env.num_envs={num_envs} must be divisible by the {len(devices)} devices")
    mesh = Mesh(np.array(devices), ("envs",))
    replicated = NamedSharding(mesh, PartitionSpec())
    by_env = NamedSharding(mesh, PartitionSpec(None, "envs"))
    runner = jax.tree.map(
        lambda x: jax.device_put(
            x, by_env if x.ndim >= 2 and x.shape[1] == num_envs else replicated
        ),
        state.runner,
    )
    rest = jax.device_put(state.replace(runner=None), replicated)
    return rest.replace(runner=runner)


def chunk_plan(num_updates: int, num_chunks: int) -> list[int]:
    """Updates per host-loop chunk: equal chunks, the last one shorter if need be."""
    size = max(1, math.ceil(num_updates / max(1, num_chunks)))
    return [min(size, num_updates - start) for start in range(0, num_updates, size)]


def _check_finite(state: TrainState, metrics: dict[str, Any], chunk: int) -> None:
    bad = [k for k, v in metrics.items() if k.startswith("loss/") and not np.all(np.isfinite(v))]
    if not all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(state.params)):
        bad.append("parameters")
    if bad:
        raise TrainingDiverged(f"non-finite {', '.join(bad)} in chunk {chunk}")


def build(cfg: Config):
    """A run's environment, policy, ``PPO`` and initial state (seeds vmapped, envs sharded),
    and the ``HostRollout`` for PettingZoo environments (else ``None``)."""
    env = make_env(cfg)
    policy = make_policy(cfg.policy, env)
    ppo = PPO(cfg, env, policy)
    keys = jax.random.split(jax.random.PRNGKey(cfg.seed), cfg.num_seeds)
    if not ppo.host:
        return env, policy, ppo, shard(jax.jit(jax.vmap(ppo.init))(keys), cfg.env.num_envs), None
    if cfg.num_seeds != 1:
        raise ValueError("host (PettingZoo) environments train one seed per run: set num_seeds=1")
    host = HostRollout(policy, env)
    return env, policy, ppo, jax.vmap(ppo.init)(keys, host.first_observation(cfg.seed)), host


def train(cfg: Config, stop_after_chunks: int | None = None) -> Path:
    """Train (or resume) a run; returns its directory. See ``configs/`` for the options."""
    resuming = cfg.resume is not None
    run_dir = Path(cfg.resume or cfg.run_dir)
    if resuming:
        cfg = load_run_config(run_dir)  # the run's own config; its config.yaml stays as it was
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(to_yaml(cfg))

    env, policy, ppo, state, host = build(cfg)

    plan = chunk_plan(ppo.num_updates, cfg.logger.num_chunks)
    ckpt = checkpoint.Checkpointer(run_dir / "checkpoints", cfg.keep_checkpoints)
    start = 0
    if resuming and ckpt.latest() is not None:
        state, start = ckpt.restore(state)
        if ppo.host:
            fresh = host.first_observation(cfg.seed + start)  # host envs cannot be checkpointed
            carry = jax.tree.map(jnp.zeros_like, state.runner.carry)
            state = state.replace(runner=state.runner.replace(obs=fresh, carry=carry))

    if ppo.host:
        learn = jax.jit(jax.vmap(ppo.learn))

        def run_chunk(state, n):
            metrics = []
            for _ in range(n):
                key, k_roll = jax.vmap(jax.random.split, out_axes=1)(state.key)
                carry0 = state.runner.carry
                runner, traj = host(state.params, state.runner, k_roll[0], cfg.algo.num_steps)
                state, m = learn(state.replace(runner=runner, key=key), traj, carry0)
                metrics.append(m)
            return state, jax.tree.map(lambda *x: jnp.stack(x), *metrics)
    else:
        update = jax.vmap(ppo.update)
        run_chunk = jax.jit(
            lambda state, n: jax.lax.scan(lambda s, _: update(s), state, None, length=n),
            static_argnums=1,
        )

    evaluator = evaluate.Evaluator(cfg, env, policy, run_dir / "eval")
    logger = Logger(
        cfg,
        run_dir,
        total_updates=ppo.num_updates,
        steps_per_update=ppo.steps_per_update,
        start_update=sum(plan[:start]),
    )
    finished = False
    try:
        for c in range(start, len(plan)):
            if stop_after_chunks is not None and c - start >= stop_after_chunks:
                logger.console(
                    f"stopped after {stop_after_chunks} chunk(s); resume with resume={run_dir}"
                )
                break
            t0 = time.perf_counter()
            new_state, metrics = run_chunk(state, plan[c])
            metrics = jax.device_get(metrics)
            _check_finite(new_state, metrics, c)
            state = new_state
            logger.log_updates(metrics, time.perf_counter() - t0)
            last = c == len(plan) - 1
            if last or (cfg.eval.every_chunks and (c + 1) % cfg.eval.every_chunks == 0):
                tag = f"update_{int(state.update[0])}"
                logger.log_eval(evaluator(state, gif=last or cfg.eval.gif_episodes > 0, tag=tag))
            if last or (c + 1) % cfg.checkpoint_every_chunks == 0:
                ckpt.save(c + 1, state)
        else:
            finished = True
    except TrainingDiverged as err:
        last_good = ckpt.latest()
        where = (
            f"the last good checkpoint is {ckpt.path(last_good)}"
            if last_good
            else "no checkpoint was saved yet"
        )
        logger.console(f"[red]training stopped: {err}; {where}")
        raise TrainingDiverged(f"{err}; {where}") from None
    finally:
        ckpt.close()
        logger.close(write_summary=finished)
    return run_dir
