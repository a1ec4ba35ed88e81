"""Evaluation episodes: returns with 95% confidence intervals, task metrics, the policy's own
statistics, GIFs.

Deterministic (greedy / mean action) and stochastic (sampled) episodes are run with every
seed's parameters, method state and frozen observation statistics, all through one episode
loop (``run_episodes``) for JAX and host (PettingZoo) environments alike. Each parallel
environment contributes its first episode. A policy with a ``statistics`` hook gets the
recorded steps (``Episodes``) and returns numbers about them (e.g. symbol usage).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import TimeStep
from envs.wrappers import EpisodeStats, VecEnv
from marl.config import Config
from marl.logging import jsonable
from marl.policies import ActorCritic, Context, Observation
from marl.rollout import (
    TASK,
    Runner,
    batched,
    episode_info,
    is_host,
    make_env,
    policy_env_step,
)

MODES = {"deterministic": True, "stochastic": False}
HOST_HORIZON = 1000  # step cap for host environments (JAX ones stop at their max_steps)
GIF_FPS = 20  # about this many frames per second of play in GIFs


@struct.dataclass
class Episodes:
    """Evaluation steps ``[T, E, ...]`` (T = the horizon, E = environments); ``valid`` marks
    the steps of each environment's first episode."""

    obs: Observation  # raw input before the step
    action: Any
    extras: Any  # what ``act`` returned to be stored
    aux: dict  # ``act``'s step metrics
    info: dict  # the step's task metrics, episode statistics and task variables (task/...)
    valid: jax.Array  # [T, E] bool
    env_state: Any = None  # for GIFs: the environment state after the step
    first_state: Any = None  # for GIFs: the state after reset


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean and 95% confidence half-width (normal approximation)."""
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return float(x.mean()), float("nan")
    return float(x.mean()), float(1.96 * x.std(ddof=1) / np.sqrt(len(x)))


def _first_end(stats: dict, finished, ts: TimeStep):
    """Keep each env's statistics from the step its first episode ended."""
    info = episode_info(ts)
    info["length"] = info.pop("episode_length")
    now = ts.terminated | ts.truncated
    first = now & ~finished
    if stats is None:
        stats = jax.tree.map(jnp.zeros_like, info)
    stats = jax.tree.map(lambda s, v: jnp.where(first, v, s), stats, info)
    return stats, finished | now


def run_episodes(
    policy: ActorCritic,
    venv,
    params,
    method_state,
    norm,
    key: jax.Array,
    ctx: Context,
    deterministic: bool,
    horizon: int,
    record: bool = False,
    record_states: bool = False,
) -> tuple[dict[str, jax.Array], Episodes | None]:
    """Each of ``venv``'s environments plays until its first episode ends (at most
    ``horizon`` steps), for every seed: ``params``, ``method_state``, ``norm``, ``key`` and
    ``ctx`` lead with a seed axis ``[S]``. Returns (per-env statistics ``[S, E]``, the
    recorded ``Episodes`` ``[S, T, E, ...]`` or None). The loop stops when every episode has
    ended; the seed axis is vmapped inside it (host environments step in a ``while_loop``
    only with an unbatched condition)."""
    k_reset, k_run = jax.vmap(jax.random.split, out_axes=1)(key)
    env_state, ts = jax.vmap(venv.reset)(k_reset)
    shape = ts.reward.shape[:2]  # [S, E]
    carry = policy.initial_carry(shape)
    runner = Runner(env_state, Observation.from_timestep(ts, jnp.ones(shape, bool)), carry, norm)
    stats, finished = jax.vmap(_first_end, (None, 0, 0))(None, jnp.zeros(shape, bool), ts)

    @jax.vmap
    def step(runner, finished, params, method_state, key, ctx):
        nxt, _, acted, ts = policy_env_step(
            policy, venv, params, method_state, runner, key, ctx, deterministic, False
        )
        states = nxt.env_state if record_states else None
        # the step's metrics, and the task variables of the episode it belongs to
        tasks = {k: v for k, v in ts.info.items() if k.startswith(TASK)}
        info = {**episode_info(ts), **tasks}
        return (
            nxt,
            ts,
            Episodes(runner.obs, acted.action, acted.extras, acted.aux, info, ~finished, states),
        )

    def body(carry):
        t, runner, stats, finished, buffer = carry
        keys = jax.vmap(jax.random.fold_in, (0, None))(k_run, t)
        runner, ts, steps = step(runner, finished, params, method_state, keys, ctx)
        if record:
            buffer = jax.tree.map(lambda b, x: b.at[:, t].set(x), buffer, steps)
        stats, finished = jax.vmap(_first_end)(stats, finished, ts)
        return t + 1, runner, stats, finished, buffer

    buffer = None
    if record:
        example = jax.eval_shape(step, runner, finished, params, method_state, k_run, ctx)[2]
        buffer = jax.tree.map(
            lambda s: jnp.zeros((s.shape[0], horizon, *s.shape[1:]), s.dtype), example
        )
    _, _, stats, _, episodes = jax.lax.while_loop(
        lambda c: (c[0] < horizon) & ~c[3].all(),
        body,
        (jnp.array(0), runner, stats, finished, buffer),
    )
    if record_states:
        episodes = episodes.replace(first_state=env_state)
    return stats, episodes


class Evaluator:
    def __init__(self, cfg: Config, env, policy: ActorCritic, out_dir: Path, num_updates: int):
        self.cfg, self.env, self.policy, self.out_dir = cfg, env, policy, out_dir
        self.episodes, self.num_updates = cfg.eval.episodes, num_updates
        self.host = is_host(env)
        if self.host:  # one batch of host environments, reset for each evaluation
            self.venv, horizon = batched(make_env(cfg, self.episodes), self.episodes), HOST_HORIZON
        else:
            self.venv, horizon = batched(env, self.episodes), int(env.max_steps)
        record = policy.statistics is not None

        def run(params, method_state, norm, update, key, deterministic):
            ctx = jax.vmap(lambda u: Context.at(u, num_updates, training=False))(update)
            return run_episodes(
                policy,
                self.venv,
                params,
                method_state,
                norm,
                key,
                ctx,
                deterministic,
                horizon,
                record,
            )

        self._runs = {mode: jax.jit(partial(run, deterministic=d)) for mode, d in MODES.items()}

    def __call__(self, state, gif: bool = False, tag: str = "final") -> dict[str, Any]:
        """Statistics over all seeds' episodes; with ``gif``, also ``eval/<tag>.gif``."""
        args = (state.params, state.method_state, state.runner.norm, state.update)
        num_seeds = state.update.shape[0]
        keys = jax.random.split(jax.random.PRNGKey(self.cfg.seed + 1), num_seeds)
        results: dict[str, Any] = {"seeds": num_seeds, "episodes_per_seed": self.episodes}
        for mode, run in self._runs.items():
            stats, episodes = jax.device_get(run(*args, keys))  # [S, E] each
            results[mode] = {k: mean_ci(np.ravel(v)) for k, v in stats.items()}
            results[mode]["per_seed"] = {
                k: np.asarray(v).mean(-1).tolist() for k, v in stats.items()
            }
            if episodes is not None:
                numbers = self.policy.statistics(episodes)
                results[mode]["statistics"] = {k: jsonable(v) for k, v in numbers.items()}
        if gif and self.cfg.eval.gif_episodes > 0:
            results["gif"] = str(self.gif(*jax.tree.map(lambda x: x[:1], args), tag))
        return results

    def gif(self, params, method_state, norm, update, tag: str) -> Path:
        """Render ``eval.gif_episodes`` deterministic episodes of the first seed (arguments
        with a seed axis of 1) to ``<out_dir>/<tag>.gif`` (real time, at about ``GIF_FPS``
        frames per second): JAX environments from the recorded states, host ones through their
        ``rgb_array`` render."""
        n = self.cfg.eval.gif_episodes
        if self.host:
            venv = make_env(self.cfg, n, film_fps=GIF_FPS)
            if "rgb_array" not in venv.envs[0].metadata.get("render_modes", ()):
                raise ValueError(f"{venv.name} has no rgb_array render: set eval.gif_episodes=0")
            self._play(batched(venv, n), HOST_HORIZON, False, params, method_state, norm, update)
            fps, every = venv.render_fps, venv.film_every
            frames = [frame for film in venv.frames for frame in film]
            venv.close()
        else:
            venv, episodes = self.record(params, method_state, norm, update, n)
            fps, every = self.env.render_fps, max(1, round(self.env.render_fps / GIF_FPS))
            frames = []
            for i in range(n):
                length = int(episodes.valid[:, i].sum())
                frames.append(venv.render(episodes.first_state, i))
                frames += [
                    venv.render(jax.tree.map(lambda x, t=t: x[t], episodes.env_state), i)
                    for t in range(length)
                    if (t + 1) % every == 0 or t == length - 1
                ]
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{tag}.gif"
        iio.imwrite(path, np.stack(frames), duration=1000 * every / fps, loop=0)
        return path

    def record(self, params, method_state, norm, update, n: int) -> tuple[VecEnv, Episodes]:
        """``n`` deterministic episodes of the first seed (arguments with a seed axis of 1) of
        a JAX environment, every step's environment state recorded: (the ``n`` environments,
        the ``Episodes`` ``[T, n, ...]`` as numpy arrays; ``valid`` marks each one's steps)."""
        venv = VecEnv(EpisodeStats(self.env), n)  # no auto-reset: the last frame ends the episode
        horizon = int(self.env.max_steps)
        episodes = self._play(venv, horizon, True, params, method_state, norm, update)[1]
        return venv, jax.tree.map(lambda x: np.asarray(x[0]), episodes)

    def _play(self, venv, horizon: int, record: bool, params, method_state, norm, update):
        ctx = jax.vmap(lambda u: Context.at(u, self.num_updates, training=False))(update)
        key = jax.random.PRNGKey(10_000)[None]
        run = partial(run_episodes, self.policy, venv, params, method_state, norm, key, ctx)
        return jax.jit(lambda: run(True, horizon, record=record, record_states=record))()


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table: one row per mode, mean ± 95% CI per statistic."""
    skip = ("per_seed", "statistics")
    keys = [k for k in results["deterministic"] if k not in skip]
    keys = ["return", "length"] + [k for k in keys if k not in ("return", "length")]
    head = f"{'mode':<14}" + "".join(f"{k:>24}" for k in keys)
    rows = [head]
    for mode in MODES:
        cells = "".join(f"{results[mode][k][0]:>14.3f} ± {results[mode][k][1]:<7.3f}" for k in keys)
        rows.append(f"{mode:<14}{cells}")
    return "\n".join(rows)
