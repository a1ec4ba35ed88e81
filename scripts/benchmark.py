"""Throughput, side by side with the anchors in one process.

    python scripts/benchmark.py envs                      # our mpe/spread vs JaxMARL vs mpe2
    python scripts/benchmark.py envs --batch 1 1024 --json out.json

One env-step is all agents acting once in one environment. JAX rollouts are ``jit`` +
``lax.scan`` over random actions with auto-reset, compile time excluded, best of
``--repeats``. JaxMARL and mpe2 come with the ``bench`` extra; a missing one is skipped.
``train`` imports ``make_train`` from a JaxMARL checkout's ``baselines/IPPO/ippo_ff_mpe.py``
(JaxMARL's pip package does not ship its baselines) and times a whole jitted training run
of each with JaxMARL's IPPO-FF MPE hyperparameters, compile excluded.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import envs
from envs.wrappers import AutoReset, VecEnv

# Steps per timed scan, by batch size: about a second of work on a 2-core CPU.
SCAN_STEPS = {1: 20_000, 64: 2_000, 1024: 300, 8192: 60}


def time_best(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``fn`` (already compiled) over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def jax_rollout_rate(reset, step, sample, num_envs: int, steps: int, repeats: int) -> float:
    """Env-steps/s of a batched functional env: ``reset(key)``, ``step(key, s, a)``."""

    def run(key):
        state = reset(key)

        def body(state, key):
            k_act, k_step = jax.random.split(key)
            state, reward = step(k_step, state, sample(k_act))
            return state, reward

        _, rewards = jax.lax.scan(body, state, jax.random.split(key, steps))
        return rewards.sum()

    run = jax.jit(run)
    key = jax.random.PRNGKey(0)
    jax.block_until_ready(run(key))  # compile
    return num_envs * steps / time_best(lambda: run(key), repeats)


def ours_spread(num_envs: int, steps: int, repeats: int) -> float:
    env = envs.make("mpe/spread")
    venv = VecEnv(AutoReset(env), num_envs)
    n = env.num_agents

    def step(key, state, actions):
        state, ts = venv.step(key, state, actions)
        return state, ts.reward.sum()

    return jax_rollout_rate(
        lambda k: venv.reset(k)[0],
        step,
        lambda k: jax.random.randint(k, (num_envs, n), 0, 5),
        num_envs,
        steps,
        repeats,
    )


def jaxmarl_spread(num_envs: int, steps: int, repeats: int) -> float:
    import jaxmarl

    env = jaxmarl.make("MPE_simple_spread_v3")
    agents = env.agents

    def reset(key):
        return jax.vmap(env.reset)(jax.random.split(key, num_envs))[1]

    def step(key, state, actions):
        _, state, reward, _, _ = jax.vmap(env.step)(jax.random.split(key, num_envs), state, actions)
        return state, sum(reward[a].sum() for a in agents)

    def sample(key):
        keys = jax.random.split(key, len(agents))
        return {
            a: jax.random.randint(k, (num_envs,), 0, 5) for a, k in zip(agents, keys, strict=True)
        }

    return jax_rollout_rate(reset, step, sample, num_envs, steps, repeats)


def mpe2_spread(steps: int = 5_000) -> float:
    """One PettingZoo mpe2 env stepped in Python (pre-drawn actions, resets included)."""
    from mpe2 import simple_spread_v3

    env = simple_spread_v3.parallel_env()
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, 5, (steps, env.num_agents))
    start = time.perf_counter()
    for t in range(steps):
        if not env.agents:
            env.reset()
        env.step({a: int(acts[t, i]) for i, a in enumerate(env.agents)})
    return steps / (time.perf_counter() - start)


def optional(fn: Callable[..., float], *args) -> float | None:
    try:
        return fn(*args)
    except ImportError as err:
        print(f"  (skipped {fn.__name__}: {err})")
        return None


def bench_envs(args: argparse.Namespace) -> dict:
    rows = []
    for b in args.batch:
        steps = max(10, int(SCAN_STEPS.get(b, max(20, 300_000 // b)) * args.scale))
        ours = ours_spread(b, steps, args.repeats)
        anchor = None if args.no_jaxmarl else optional(jaxmarl_spread, b, steps, args.repeats)
        rows.append({"num_envs": b, "ours": ours, "jaxmarl": anchor})
        ratio = f"{ours / anchor:6.2f}x" if anchor else "   n/a"
        print(
            f"  {b:>6} envs   ours {ours:>14,.0f}   JaxMARL {anchor or 0:>14,.0f}   ratio {ratio}"
        )
    pz = None if args.no_mpe2 else optional(mpe2_spread)
    one = next((r["ours"] for r in rows if r["num_envs"] == 1), None)
    if pz:
        ratio = f"{one / pz:.0f}x ours at 1 env" if one else ""
        print(f"  PettingZoo mpe2, one env, Python loop: {pz:,.0f} env-steps/s  {ratio}")
    return {"task": "mpe/spread (N=3, discrete, random actions)", "rows": rows, "mpe2_one_env": pz}


# JaxMARL's baselines/IPPO/config/ippo_ff_mpe.yaml
JAXMARL_IPPO_MPE = {
    "LR": 2.5e-4,
    "NUM_ENVS": 16,
    "NUM_STEPS": 128,
    "UPDATE_EPOCHS": 4,
    "NUM_MINIBATCHES": 4,
    "GAMMA": 0.99,
    "GAE_LAMBDA": 0.95,
    "CLIP_EPS": 0.2,
    "ENT_COEF": 0.01,
    "VF_COEF": 0.5,
    "MAX_GRAD_NORM": 0.5,
    "ACTIVATION": "tanh",
    "ENV_NAME": "MPE_simple_spread_v3",
    "ENV_KWARGS": {},
    "ANNEAL_LR": True,
}


def jaxmarl_ippo(checkout: str, total_timesteps: int, seeds: int):
    """JaxMARL's own ``make_train`` (IPPO-FF MPE) as ``(train_fn, keys)``."""
    import sys

    import wandb

    sys.path.insert(0, checkout)
    from baselines.IPPO.ippo_ff_mpe import make_train

    wandb.init(mode="disabled")  # its update step logs through wandb.log
    config = {**JAXMARL_IPPO_MPE, "TOTAL_TIMESTEPS": total_timesteps}
    return jax.jit(jax.vmap(make_train(config))), jax.random.split(jax.random.PRNGKey(0), seeds)


def ours_ippo(total_timesteps: int, seeds: int, policy: str = "ippo"):
    """Our PPO with the same hyperparameters, all updates in one jitted scan."""
    from marl.config import Config, PolicyConfig
    from marl.policies import make_policy
    from marl.train import PPO

    cfg = Config()
    cfg.algo.total_timesteps = total_timesteps
    cfg.policy = PolicyConfig(name=policy, agent_id=policy == "mappo")
    env = envs.make("mpe/spread")
    ppo = PPO(cfg, env, make_policy(cfg.policy, env))
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)

    def run(keys):
        state = jax.vmap(ppo.init)(keys)
        update = jax.vmap(ppo.update)
        return jax.lax.scan(lambda s, _: update(s), state, None, length=ppo.num_updates)[1]

    return jax.jit(run), keys


def bench_train(args: argparse.Namespace) -> dict:
    steps = args.total_timesteps * args.seeds
    rows = []
    for name, make in [
        ("ours IPPO", lambda: ours_ippo(args.total_timesteps, args.seeds)),
        ("ours MAPPO", lambda: ours_ippo(args.total_timesteps, args.seeds, "mappo")),
        ("JaxMARL IPPO", lambda: jaxmarl_ippo(args.jaxmarl, args.total_timesteps, args.seeds)),
    ]:
        if name.startswith("JaxMARL") and not args.jaxmarl:
            print("  (skipped JaxMARL: give --jaxmarl PATH of a JaxMARL checkout)")
            continue
        fn, keys = make()
        compiled = fn.lower(keys).compile()
        rate = steps / time_best(lambda c=compiled, k=keys: c(k), args.repeats)
        rows.append({"system": name, "env_steps_per_s": rate})
    base = next((r["env_steps_per_s"] for r in rows if r["system"].startswith("JaxMARL")), None)
    for r in rows:
        ratio = f"{r['env_steps_per_s'] / base:5.2f}x JaxMARL" if base else ""
        print(f"  {r['system']:<14} {r['env_steps_per_s']:>12,.0f} env-steps/s  {ratio}")
    return {
        "task": f"PPO-FF on mpe/spread, JaxMARL's IPPO MPE hyperparameters, {args.total_timesteps:,} "
        f"env-steps x {args.seeds} seed(s), compile excluded",
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("envs", help="environment env-steps/s: mpe/spread vs JaxMARL and mpe2")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 64, 1024, 8192])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the scan lengths")
    p.add_argument("--no-jaxmarl", action="store_true")
    p.add_argument("--no-mpe2", action="store_true")
    p.add_argument("--json", help="also write the results here")
    p = sub.add_parser("train", help="IPPO/MAPPO training env-steps/s vs JaxMARL's IPPO-FF")
    p.add_argument("--jaxmarl", help="path of a JaxMARL checkout (for baselines/IPPO)")
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    device = jax.devices()[0]
    machine = (
        f"{device.device_kind} ({device.platform}), {platform.processor() or platform.machine()}"
    )
    print(f"jax {jax.__version__} on {machine}, {jax.device_count()} device(s)")
    print(
        "env-steps/s (one step = all agents act once in one env); compile excluded, best of "
        f"{args.repeats}"
    )
    bench = {"envs": bench_envs, "train": bench_train}[args.what]
    results = {"machine": machine, "jax": jax.__version__, **bench(args)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
