"""Throughput, side by side with the anchors in one process.

    python scripts/benchmark.py envs                      # our mpe/spread vs JaxMARL vs mpe2
    python scripts/benchmark.py envs --batch 1 1024 --json out.json
    python scripts/benchmark.py pettingzoo                # our ParallelEnv.step vs mpe2's
    python scripts/benchmark.py cable                     # cable_load/hover env, training, acting
    python scripts/benchmark.py hammer [--multiwalker]    # HAMMER v2 and IL vs the reference code
    python scripts/benchmark.py commformer [--n 3 5 8 16] # CommFormer vs MAPPO and the reference
    python scripts/benchmark.py vq [--aim-reference PATH --torch-python PY]  # VQ channel, AIM
    python scripts/benchmark.py sweep                     # a 12-config sweep vs 12 runs

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
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import envs
from envs.wrappers import AutoReset, VecEnv, to_pettingzoo

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


def ours_env(name: str, num_envs: int, steps: int, repeats: int) -> float:
    """Env-steps/s of one of our registered envs under uniform random actions."""
    env = envs.make(name)
    venv = VecEnv(AutoReset(env), num_envs)
    n = env.num_agents
    if env.discrete:
        sizes = jnp.asarray(env.action_sizes)

        def sample(k):
            return jax.random.randint(k, (num_envs, n), 0, sizes)
    else:
        space = env.action_space(env.agents[0])

        def sample(k):
            shape = (num_envs, n, env.action_dim)
            return jax.random.uniform(k, shape, minval=space.low, maxval=space.high)

    def step(key, state, actions):
        state, ts = venv.step(key, state, actions)
        return state, ts.reward.sum()

    return jax_rollout_rate(lambda k: venv.reset(k)[0], step, sample, num_envs, steps, repeats)


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


def parallel_env_rate(env, steps: int = 5_000) -> float:
    """One PettingZoo ParallelEnv stepped in Python (pre-drawn actions, resets included)."""
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, 5, (steps, env.num_agents))
    start = time.perf_counter()
    for t in range(steps):
        if not env.agents:
            env.reset()
        env.step({a: int(acts[t, i]) for i, a in enumerate(env.agents)})
    return steps / (time.perf_counter() - start)


def mpe2_spread(steps: int = 5_000) -> float:
    from mpe2 import simple_spread_v3

    return parallel_env_rate(simple_spread_v3.parallel_env(), steps)


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
        ours = ours_env("mpe/spread", b, steps, args.repeats)
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


def bench_pettingzoo(args: argparse.Namespace) -> dict:
    """Our PettingZoo view of mpe/spread vs mpe2's, one env each, interleaved repeats."""
    from mpe2 import simple_spread_v3

    systems = {
        "ours": to_pettingzoo(envs.make("mpe/spread")),
        "mpe2": simple_spread_v3.parallel_env(),
    }
    parallel_env_rate(systems["ours"], 100)  # compile
    best = dict.fromkeys(systems, 0.0)
    for _ in range(args.repeats):
        for name, env in systems.items():
            best[name] = max(best[name], parallel_env_rate(env, args.steps))
    ratio = best["ours"] / best["mpe2"]
    print(
        f"  ParallelEnv.step, mpe/spread (N=3, random discrete actions, resets included): "
        f"ours {best['ours']:,.0f}   mpe2 {best['mpe2']:,.0f}   ratio {ratio:.2f}x"
    )
    return {"task": "mpe/spread ParallelEnv.step, one env", **best, "ratio": ratio}


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


def learner(overrides: list[str]):
    """The ``Learner`` of a run composed from ``configs/`` with ``overrides``."""
    from hydra import compose, initialize_config_dir

    from marl.config import CONFIG_DIR, register_configs, to_config
    from marl.policies import make_policy
    from marl.rollout import make_env
    from marl.train import Learner, num_updates

    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        cfg = to_config(compose("config", overrides=overrides))
    env = make_env(cfg)
    return Learner(cfg, env, make_policy(cfg, env, num_updates(cfg)))


def ours_ippo(total_timesteps: int, seeds: int, policy: str = "ippo"):
    """Our PPO with the same hyperparameters, all updates in one jitted scan."""
    return ours_training([f"policy={policy}"], total_timesteps, seeds)


def ours_training(overrides: list[str], total_timesteps: int, seeds: int):
    """A whole training run of ``overrides`` for ``seeds`` seeds as ``(train_fn, keys)``."""
    ppo = learner([*overrides, f"algo.total_timesteps={total_timesteps}"])
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)

    def run(keys):
        state = jax.vmap(ppo.init)(keys)
        update = jax.vmap(ppo.update)
        return jax.lax.scan(lambda s, _: update(s), state, None, length=ppo.num_updates)[1]

    return jax.jit(run), keys


def interleaved(systems: dict[str, Callable], steps: int, repeats: int) -> list[dict]:
    """All systems compiled first, then timed in turn ``repeats`` times (best of each): a
    slow spell of a shared machine hits every system alike. -> ``[{system, env_steps_per_s}]``"""
    compiled = {}
    for name, make in systems.items():
        fn, keys = make()
        compiled[name] = (fn.lower(keys).compile(), keys)
    best = dict.fromkeys(compiled, float("inf"))
    for _ in range(repeats):
        for name, (fn, keys) in compiled.items():
            best[name] = min(best[name], time_best(lambda f=fn, k=keys: f(k), 1))
    return [{"system": name, "env_steps_per_s": steps / t} for name, t in best.items()]


def print_rows(rows: list[dict], base: float | None, against: str) -> None:
    for r in rows:
        ratio = f"{r['env_steps_per_s'] / base:8.2f}x {against}" if base else ""
        print(f"  {r['system']:<22} {r['env_steps_per_s']:>12,.0f} env-steps/s  {ratio}")


def bench_train(args: argparse.Namespace) -> dict:
    systems = {
        "ours IPPO": lambda: ours_ippo(args.total_timesteps, args.seeds),
        "ours MAPPO": lambda: ours_ippo(args.total_timesteps, args.seeds, "mappo"),
        "JaxMARL IPPO": lambda: jaxmarl_ippo(args.jaxmarl, args.total_timesteps, args.seeds),
    }
    if not args.jaxmarl:
        print("  (skipped JaxMARL: give --jaxmarl PATH of a JaxMARL checkout)")
        del systems["JaxMARL IPPO"]
    rows = interleaved(systems, args.total_timesteps * args.seeds, args.repeats)
    base = next((r["env_steps_per_s"] for r in rows if r["system"].startswith("JaxMARL")), None)
    print_rows(rows, base, "JaxMARL")
    return {
        "task": f"PPO-FF on mpe/spread, JaxMARL's IPPO MPE hyperparameters, {args.total_timesteps:,} "
        f"env-steps x {args.seeds} seed(s), compile excluded, best of {args.repeats} interleaved",
        "rows": rows,
    }


# The HAMMER reference code on this project's 2-core machine (../shared/research/hammer.md):
# HAMMER v2 on cooperative navigation with N = 3, and on multiwalker (3 walkers).
REFERENCE_HAMMER = {"mpe/spread": 433, "multiwalker": 279}
HAMMER_METHODS = {
    "IL": ["policy=hammer", "comm=none"],
    "HAMMER v2": ["policy=hammer", "comm=messenger", "comm.mode=learned"],
}


def bench_hammer(args: argparse.Namespace) -> dict:
    """HAMMER v2 and IL training with the reference's PPO settings (algo=hammer_reference:
    32 episodes per update, 8 full-batch epochs), on mpe/spread and, with ``--multiwalker``,
    on PettingZoo's multiwalker (stepped on the host)."""
    settings = {"mpe/spread": ["algo=hammer_reference", "env.num_envs=32"]}
    if args.multiwalker:
        settings["multiwalker"] = [
            "env=multiwalker_hammer",
            "algo=hammer_reference",
            "algo.num_steps=500",
            f"env.num_envs={args.multiwalker_envs}",
            "algo.update_epochs=80",
        ]
    out = {}
    for env, base in settings.items():
        host = env == "multiwalker"  # PettingZoo environments step one seed at a time
        steps = args.multiwalker_steps if host else args.total_timesteps
        rows = []
        for seeds in [1] if host else args.seeds:
            group = {
                f"{name}, {seeds} seed(s)": partial(ours_training, [*method, *base], steps, seeds)
                for name, method in HAMMER_METHODS.items()
            }
            rows += interleaved(group, steps * seeds, args.repeats)
        print(f" {env}:")
        print_rows(rows, REFERENCE_HAMMER[env], "the reference")
        out[env] = {"rows": rows, "reference_env_steps_per_s": REFERENCE_HAMMER[env]}
    return {
        "task": f"HAMMER v2 and IL training, algo=hammer_reference, {args.total_timesteps:,} "
        f"env-steps per seed on mpe/spread (N = 3), compile excluded, best of "
        f"{args.repeats} interleaved",
        **out,
    }


# The reference trained at about 27k env-steps/s (Isaac Lab, 4096 envs, one unnamed GPU).
REFERENCE_CABLE_TRAINING = 27_000


def cable_training(overrides: list[str], updates: int):
    """A jitted run of ``updates`` PPO updates of ``experiment=cable_hover`` -> (fn, env-steps)."""
    ppo = learner(["experiment=cable_hover", *overrides])

    def run(key):
        state = ppo.init(key)
        return jax.lax.scan(lambda s, _: ppo.update(s), state, None, length=updates)[1]

    return jax.jit(run), updates * ppo.steps_per_update


def bench_cable(args: argparse.Namespace) -> dict:
    env_rows = []
    for b in args.batch:
        steps = max(10, int(max(20, 200_000 // b) * args.scale))
        rate = ours_env(args.env, b, steps, args.repeats)
        env_rows.append({"num_envs": b, "env_steps_per_s": rate})
        print(f"  env {args.env}: {b:>6} envs   {rate:>12,.0f} env-steps/s")
    train_rows = []
    for label, hidden in [("reference MLP [1024, 512, 256, 128]", "[1024,512,256,128]")] + [
        (f"MLP {h}", h.replace(" ", "")) for h in args.hidden
    ]:
        overrides = [
            f"env.name={args.env}",
            f"env.num_envs={args.train_envs}",
            f"policy.actor_hidden={hidden}",
            f"policy.critic_hidden={hidden}",
        ]
        fn, steps = cable_training(overrides, args.updates)
        key = jax.random.PRNGKey(0)
        compiled = fn.lower(key).compile()
        rate = steps / time_best(lambda c=compiled, k=key: c(k), args.repeats)
        ratio = rate / REFERENCE_CABLE_TRAINING
        train_rows.append({"network": label, "num_envs": args.train_envs, "env_steps_per_s": rate})
        print(
            f"  training, {label}, {args.train_envs} envs: {rate:>10,.0f} env-steps/s "
            f"({ratio:.2f}x the reference's 27k)"
        )
    inference_rows = []
    for n in args.inference_n:
        for policy in ("mappo", "centralised"):
            row = cable_inference(n, policy, args.repeats)
            inference_rows.append(row)
            print(
                f"  acting, {n} MAVs, {policy:>11} actor [1024, 512, 256, 128]: "
                f"{row['flops_per_agent'] / 1e6:6.2f} MFLOP and {row['us_per_agent']:6.1f} us "
                "per agent and step"
            )
    return {
        "task": f"{args.env}: random-action rollouts; MAPPO training (experiment=cable_hover, "
        f"{args.updates} updates x {args.train_envs} envs x 128 steps, compile excluded); "
        "acting in one env, per agent",
        "env_rows": env_rows,
        "train_rows": train_rows,
        "inference_rows": inference_rows,
        "reference_training_env_steps_per_s": REFERENCE_CABLE_TRAINING,
    }


def cable_inference(n: int, policy: str, repeats: int) -> dict:
    """One env's greedy actions with the reference network: XLA's FLOP count and the time
    per agent. ``mappo``: each MAV's actor on its own observation (decentralised);
    ``centralised``: one actor on the global state for every MAV."""
    from marl.policies import Context

    hidden = "[1024,512,256,128]"
    central = policy == "centralised"  # the cable observations carry the id, the state not
    ppo = learner(
        ["experiment=cable_hover", f"+env.options.num_agents={n}", "env.num_envs=1",
         f"policy.actor_hidden={hidden}", f"policy.critic_hidden={hidden}",
         f"policy.centralised_actor={central}", f"policy.agent_id={central}"]
    )  # fmt: skip
    state = ppo.init(jax.random.PRNGKey(0))
    act = jax.jit(
        lambda s: ppo.policy.act(
            s.params, s.method_state, s.runner.carry, s.runner.obs, s.key, Context.at(0, 1),
            deterministic=True,
        ).action
    )  # fmt: skip
    compiled = act.lower(state).compile()
    cost = compiled.cost_analysis()
    flops = (cost[0] if isinstance(cost, list) else cost)["flops"]
    seconds = min(time_best(lambda: compiled(state), repeats) for _ in range(20))
    return {
        "num_agents": n,
        "policy": policy,
        "flops_per_agent": flops / n,
        "us_per_agent": seconds / n * 1e6,
    }


# The CommFormer reference code on this project's 2-core machine (../shared/research/
# commformer.md): sparse commformer_dec on Predator-Prey, 1 torch thread.
REFERENCE_COMMFORMER_PP = 606


def bench_commformer(args: argparse.Namespace) -> dict:
    """CommFormer and MAPPO training with the reference's PPO (``algo=mat``): on Predator-Prey
    (``experiment=commformer_pp``, against the reference's 606 env-steps/s) and on
    ``mpe/spread`` with N agents (how the cost grows with N)."""
    methods = {
        "CommFormer": ["policy=commformer", "comm=graph"],
        "MAPPO": ["policy=mappo", "comm=none"],
    }
    settings = {"predator_prey/pp": ["experiment=commformer_pp"]}
    for n in args.n:
        settings[f"mpe/spread N={n}"] = [
            "experiment=commformer_pp",
            "env=spread",
            f"env.options.num_agents={n}",
            "env.num_envs=32",
            "algo.num_steps=100",
        ]
    out = {}
    for setting, base in settings.items():
        group = {
            name: partial(ours_training, [*base, *method], args.total_timesteps, 1)
            for name, method in methods.items()
        }
        rows = interleaved(group, args.total_timesteps, args.repeats)
        reference = REFERENCE_COMMFORMER_PP if setting.startswith("predator") else None
        print(f" {setting}:")
        print_rows(rows, reference, "the reference")
        out[setting] = {"rows": rows, "reference_env_steps_per_s": reference}
    return {
        "task": f"CommFormer (sparsity 0.4, bi-level) and MAPPO training with algo=mat (10 "
        f"full-batch epochs), {args.total_timesteps:,} env-steps, 1 seed, compile excluded, "
        f"best of {args.repeats} interleaved",
        **out,
    }


def sweep_program(overrides: list[str], total_timesteps: int, points: list[dict[str, float]]):
    """One jitted training program of ``points`` (``{"algo.lr": ...}``), one seed each, as
    ``sweep.*`` builds it: ``(train_fn, (keys, hyper))``."""
    ppo = learner([*overrides, f"algo.total_timesteps={total_timesteps}"])
    keys = jnp.tile(jax.random.split(jax.random.PRNGKey(0), 1), (len(points), 1))
    hyper = jax.tree.map(lambda *v: jnp.stack(v), *map(ppo.hyperparameters, points))

    def run(args):
        state = jax.vmap(ppo.init)(*args)
        update = jax.vmap(ppo.update)
        return jax.lax.scan(lambda s, _: update(s), state, None, length=ppo.num_updates)[1]

    return jax.jit(run), (keys, hyper)


def bench_sweep(args: argparse.Namespace) -> dict:
    """A sweep of ``len(lr) x len(ent_coef)`` configurations trained as one program vs the
    same configurations one after another (one compiled single-configuration program, run
    once per configuration: the hyperparameters are inputs, so it compiles once)."""
    overrides = [f"policy={args.policy}", f"env.num_envs={args.num_envs}"]
    points = [{"algo.lr": lr, "algo.ent_coef": e} for lr in args.lr for e in args.ent_coef]
    sweep, sweep_args = sweep_program(overrides, args.total_timesteps, points)
    t0 = time.perf_counter()
    sweep = sweep.lower(sweep_args).compile()
    compile_sweep = time.perf_counter() - t0
    singles = [sweep_program(overrides, args.total_timesteps, [p]) for p in points]
    t0 = time.perf_counter()
    single = singles[0][0].lower(singles[0][1]).compile()
    compile_single = time.perf_counter() - t0
    best = {"sweep": float("inf"), "sequential": float("inf")}
    for _ in range(args.repeats):
        best["sweep"] = min(best["sweep"], time_best(lambda: sweep(sweep_args), 1))
        best["sequential"] = min(
            best["sequential"], time_best(lambda: [single(a) for _, a in singles], 1)
        )
    steps = args.total_timesteps * len(points)
    rows = [
        {"system": f"one program, {len(points)} configs", "env_steps_per_s": steps / best["sweep"]},
        {"system": f"{len(points)} sequential runs", "env_steps_per_s": steps / best["sequential"]},
    ]
    print_rows(rows, rows[1]["env_steps_per_s"], "sequential")
    print(f"  compile: the sweep {compile_sweep:.1f} s once; one run {compile_single:.1f} s each")
    return {
        "task": f"{args.policy} on mpe/spread, {args.num_envs} envs, lr {args.lr} x ent_coef "
        f"{args.ent_coef}, {args.total_timesteps:,} env-steps per config, 1 seed, compile "
        f"excluded, best of {args.repeats} interleaved",
        "rows": rows,
        "compile_s": {"sweep": compile_sweep, "one_run": compile_single},
    }


# The VQ channel and AI Mother Tongue's agents.
VQ_METHODS = {"MAPPO": ["comm=none"], "MAPPO + VQ channel": ["comm=vq"]}


def write_mnist_like(raw: Path) -> None:
    """MNIST-format idx files of scikit-learn's digits, 28 x 28 (each pixel 3 x 3, a 2-pixel
    border): data for the reference script, which loads MNIST from ``data/MNIST/raw``."""
    from envs.games.images import IDX_IMAGES, IDX_LABELS, load_digits

    images, labels = load_digits()
    big = np.pad(np.kron(images, np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        for kind, data, magic in (
            ("images-idx3", big * 255, IDX_IMAGES),
            ("labels-idx1", labels, IDX_LABELS),
        ):
            head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in data.shape)
            (raw / f"{split}-{kind}-ubyte").write_bytes(head + data.astype(np.uint8).tobytes())


def reference_aim_rate(checkout: str, python: str, rounds: tuple[int, int]) -> float:
    """Rounds/s of the reference's game loop (``vqvae_agents_AIM.py``, batch 1, 1 torch
    thread): the wall-time difference of two runs of different lengths (VQ-VAE training and
    start-up cancel), on the digits written as MNIST files."""
    import shutil
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        for f in Path(checkout).glob("*.py"):
            shutil.copy(f, work)
        write_mnist_like(Path(work) / "data" / "MNIST" / "raw")
        env = {"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        times = []
        for r in rounds:
            start = time.perf_counter()
            cmd = [python, "vqvae_agents_AIM.py", "--epochs", "1", "--rounds", str(r)]
            subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
    return (rounds[1] - rounds[0]) / (times[1] - times[0])


def bench_vq(args: argparse.Namespace) -> dict:
    """MAPPO training on mpe/speaker_listener with and without the VQ channel; AIM's agents on
    the contextual PD, one round per update (the reference's batch-1 loop) and 16 rounds per
    update, against the reference code (``--aim-reference``)."""
    base = ["env=speaker_listener", "policy=mappo"]
    group = {
        name: partial(ours_training, [*base, *m], args.total_timesteps, 1)
        for name, m in VQ_METHODS.items()
    }
    rows = interleaved(group, args.total_timesteps, args.repeats)
    print(" mpe/speaker_listener:")
    print_rows(rows, None, "")
    aim = ["experiment=aim_pd", "policy.pretrain_steps=0"]  # rounds/s: pretraining excluded
    group = {
        "AIM, 1 round per update": partial(ours_training, aim, args.rounds, 1),
        "AIM, 16 rounds per update": partial(
            ours_training, [*aim, "env.num_envs=16"], args.rounds * 16, 1
        ),
    }
    aim_rows = []
    for name, make in group.items():  # different lengths: timed one after the other
        steps = args.rounds * (16 if "16" in name else 1)
        aim_rows += interleaved({name: make}, steps, args.repeats)
    reference = None
    if args.aim_reference:
        reference = reference_aim_rate(
            args.aim_reference, args.torch_python, (100, 100 + args.rounds)
        )
    else:
        print("  (skipped the reference: give --aim-reference PATH of its checkout)")
    print(" games/contextual_pd (rounds/s):")
    print_rows(aim_rows, reference, "the reference")
    if reference:
        print(f"  {'the reference':<22} {reference:>12,.0f} rounds/s")
    return {
        "task": f"MAPPO on mpe/speaker_listener, {args.total_timesteps:,} env-steps, with and "
        f"without comm=vq; AIM (experiment=aim_pd) on the contextual PD, {args.rounds:,} "
        "updates; compile excluded, 1 seed",
        "speaker_listener": rows,
        "contextual_pd": aim_rows,
        "reference_rounds_per_s": reference,
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
    p = sub.add_parser("pettingzoo", help="our PettingZoo view's step vs mpe2, one env")
    p.add_argument("--steps", type=int, default=5_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="also write the results here")
    p = sub.add_parser("train", help="IPPO/MAPPO training env-steps/s vs JaxMARL's IPPO-FF")
    p.add_argument("--jaxmarl", help="path of a JaxMARL checkout (for baselines/IPPO)")
    p.add_argument("--total-timesteps", type=int, default=1_000_000)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    p = sub.add_parser("hammer", help="HAMMER v2 and IL training vs the reference code")
    p.add_argument("--total-timesteps", type=int, default=400_000)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 5])
    p.add_argument("--multiwalker", action="store_true", help="also on PettingZoo multiwalker")
    p.add_argument("--multiwalker-envs", type=int, default=4)
    p.add_argument("--multiwalker-steps", type=int, default=20_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    p = sub.add_parser("commformer", help="CommFormer vs MAPPO training, and vs the reference")
    p.add_argument("--total-timesteps", type=int, default=40_000)
    p.add_argument("--n", type=int, nargs="*", default=[3, 5, 8, 16], help="mpe/spread sizes")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    p = sub.add_parser("vq", help="the VQ channel's cost, and AIM's rounds/s vs the reference")
    p.add_argument("--total-timesteps", type=int, default=400_000)
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--aim-reference", help="a checkout of cyrilliu1974/AI-Mother-Tongue")
    p.add_argument("--torch-python", default="python", help="a Python with torch, torchvision")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    p = sub.add_parser("sweep", help="a hyperparameter sweep in one program vs sequential runs")
    p.add_argument("--policy", default="mappo")
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--lr", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    p.add_argument("--ent-coef", type=float, nargs="+", default=[0.0, 0.01, 0.05])
    p.add_argument("--total-timesteps", type=int, default=100_000, help="per configuration")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the results here")
    p = sub.add_parser("cable", help="cable-suspended load: env-steps/s and MAPPO training")
    p.add_argument("--env", default="cable_load/hover")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 1024, 4096])
    p.add_argument("--train-envs", type=int, default=4096)
    p.add_argument("--updates", type=int, default=2)
    p.add_argument("--hidden", nargs="*", default=["[256, 256]"], help="smaller MLPs to time too")
    p.add_argument("--inference-n", type=int, nargs="*", default=[3, 4, 5, 8], help="team sizes")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--scale", type=float, default=1.0, help="multiply the scan lengths")
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
    bench = {
        "envs": bench_envs,
        "pettingzoo": bench_pettingzoo,
        "train": bench_train,
        "hammer": bench_hammer,
        "commformer": bench_commformer,
        "cable": bench_cable,
        "vq": bench_vq,
        "sweep": bench_sweep,
    }
    bench = bench[args.what]
    results = {"machine": machine, "jax": jax.__version__, **bench(args)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing anything
    main()
