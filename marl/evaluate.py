"""Evaluation episodes: returns with 95% confidence intervals, task metrics, GIFs.

Deterministic (greedy / mean action) and stochastic (sampled) episodes are run with every
seed's parameters and the observation statistics frozen. JAX environments run all episodes
at once under ``jit``/``vmap``; host (PettingZoo) environments step a fresh batch in Python.
Each parallel environment contributes its first episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np

from envs.core import TimeStep
from envs.wrappers import vectorize
from marl.config import Config
from marl.policies import ActorCritic, Observation
from marl.rollout import episode_info, is_host, make_env

MODES = {"deterministic": True, "stochastic": False}
HOST_HORIZON = 1000  # step cap for host environments


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


class Evaluator:
    def __init__(self, cfg: Config, env, policy: ActorCritic, out_dir: Path):
        self.cfg, self.env, self.policy, self.out_dir = cfg, env, policy, out_dir
        self.episodes = cfg.eval.episodes
        self.host = is_host(env)
        self._act = jax.jit(policy.act, static_argnames="deterministic")
        if not self.host:
            self._jax_runs = {
                mode: jax.jit(jax.vmap(lambda p, n, k, d=det: self._jax_episodes(p, n, k, d)))
                for mode, det in MODES.items()
            }

    def __call__(self, state, gif: bool = False, tag: str = "final") -> dict[str, Any]:
        """Statistics over all seeds' episodes; with ``gif``, also ``eval/<tag>.gif``."""
        params, norm = state.params, state.runner.norm
        num_seeds = jax.tree.leaves(params)[0].shape[0]
        results: dict[str, Any] = {"seeds": num_seeds, "episodes_per_seed": self.episodes}
        for mode, det in MODES.items():
            if self.host:
                stats = jax.tree.map(lambda x: x[None], self._host_episodes(params, norm, det))
            else:
                keys = jax.random.split(jax.random.PRNGKey(self.cfg.seed + 1), num_seeds)
                stats = self._jax_runs[mode](params, norm, keys)
            stats = jax.device_get(stats)  # [S, E] each
            results[mode] = {k: mean_ci(np.ravel(v)) for k, v in stats.items()}
            results[mode]["per_seed_return"] = np.asarray(stats["return"]).mean(-1).tolist()
        if gif and not self.host and self.cfg.eval.gif_episodes > 0:
            first = jax.tree.map(lambda x: x[0], (params, norm))
            results["gif"] = str(self.gif(*first, tag))
        return results

    def _jax_episodes(self, params, norm, key, deterministic: bool) -> dict[str, jax.Array]:
        venv = vectorize(self.env, self.episodes)
        k_reset, k_run = jax.random.split(key)
        env_state, ts = venv.reset(k_reset)
        stats, finished = _first_end(None, jnp.zeros(self.episodes, bool), ts)

        def step(carry, key):
            env_state, ts, policy_carry, stats, finished = carry
            k_act, k_env = jax.random.split(key)
            obs = norm(Observation.from_timestep(ts, ts.terminated | ts.truncated))
            policy_carry, action, *_ = self.policy.act(
                params, policy_carry, obs, k_act, deterministic
            )
            env_state, ts = venv.step(k_env, env_state, action)
            stats, finished = _first_end(stats, finished, ts)
            return (env_state, ts, policy_carry, stats, finished), None

        carry0 = (env_state, ts, self.policy.initial_carry((self.episodes,)), stats, finished)
        keys = jax.random.split(k_run, int(self.env.max_steps))
        return jax.lax.scan(step, carry0, keys)[0][3]

    def _host_episodes(self, params, norm, deterministic: bool) -> dict[str, np.ndarray]:
        """Seed 0's episodes on a fresh batch of host environments (host runs have one seed)."""
        params, norm = jax.tree.map(lambda x: x[0], (params, norm))
        env = make_env(self.cfg, num_envs=self.episodes)
        ts = env.reset(seed=self.cfg.seed + 10_000)
        carry = self.policy.initial_carry((self.episodes,))
        stats, finished = _first_end(None, np.zeros(self.episodes, bool), ts)
        key = jax.random.PRNGKey(self.cfg.seed + 1)
        for _ in range(HOST_HORIZON):
            key, k_act = jax.random.split(key)
            obs = norm(Observation.from_timestep(ts, ts.terminated | ts.truncated))
            carry, action, *_ = self._act(params, carry, obs, k_act, deterministic=deterministic)
            ts = env.step(np.asarray(action))
            stats, finished = _first_end(stats, finished, ts)
            if finished.all():
                break
        env.close()
        return stats

    def gif(self, params, norm, tag: str) -> Path:
        """Render ``eval.gif_episodes`` deterministic episodes to ``<out_dir>/<tag>.gif``
        (real time, at most about 20 frames per second)."""
        env, frames = self.env, []
        every = max(1, round(env.render_fps / 20))
        step = jax.jit(env.step)
        for i in range(self.cfg.eval.gif_episodes):
            state, ts = env.reset(jax.random.PRNGKey(10_000 + i))
            carry = self.policy.initial_carry((1,))
            frames.append(env.render(state))
            for t in range(int(env.max_steps)):
                obs = jax.tree.map(
                    lambda x: x[None], Observation.from_timestep(ts, jnp.array(t == 0))
                )
                carry, action, *_ = self._act(
                    params, carry, norm(obs), jax.random.PRNGKey(t), deterministic=True
                )
                state, ts = step(jax.random.PRNGKey(t), state, action[0])
                done = bool(ts.terminated | ts.truncated)
                if (t + 1) % every == 0 or done:
                    frames.append(env.render(state))
                if done:
                    break
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{tag}.gif"
        iio.imwrite(path, np.stack(frames), duration=1000 * every / env.render_fps, loop=0)
        return path


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table: one row per mode, mean ± 95% CI per statistic."""
    keys = [k for k in results["deterministic"] if k != "per_seed_return"]
    keys = ["return", "length"] + [k for k in keys if k not in ("return", "length")]
    head = f"{'mode':<14}" + "".join(f"{k:>24}" for k in keys)
    rows = [head]
    for mode in MODES:
        cells = "".join(f"{results[mode][k][0]:>14.3f} ± {results[mode][k][1]:<7.3f}" for k in keys)
        rows.append(f"{mode:<14}{cells}")
    return "\n".join(rows)
