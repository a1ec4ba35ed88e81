"""Our environments under Stable-Baselines3 + SuperSuit: parameter-shared PPO vs random.

    pip install -e ".[clients]"
    python experiments/clients/sb3_supersuit.py train --env mpe/spread --seeds 0 1 2 3 4
    python experiments/clients/sb3_supersuit.py train --env mpe/speaker_listener --seeds 0 1 2 3 4
    python experiments/clients/sb3_supersuit.py report

The pipeline PettingZoo users reach for first: ``to_pettingzoo`` -> (``pad_observations_v0``,
``pad_action_space_v0`` when the agents differ) -> ``pettingzoo_env_to_vec_env_v1`` (one
vector entry per agent) -> ``concat_vec_envs_v1(..., base_class="stable_baselines3")``
(pickled copies; with ``--num-cpus`` > 0 in worker processes, started with ``spawn``) ->
SB3's PPO with one policy for every agent. ``--steps`` counts environment steps (all agents
acting once in one copy) over all copies; each run's model, its exact command and its evaluation go to
``runs/<env>/seed<k>/``. Evaluation: the greedy policy and uniformly random actions, the
return per agent over ``--episodes`` episodes of a fresh seeded copy.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import supersuit as ss
from stable_baselines3 import PPO
from stable_baselines3.common.utils import set_random_seed

import envs
from envs.wrappers import to_pettingzoo
from marl.evaluate import mean_ci

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs"


def padded(env_name: str):
    """The PettingZoo view, padded to one observation and one action space if needed."""
    view = to_pettingzoo(envs.make(env_name))
    agents = view.possible_agents
    if len({view.observation_space(a).shape for a in agents}) > 1:
        view = ss.pad_observations_v0(view)
    if len({view.action_space(a).n for a in agents}) > 1:
        view = ss.pad_action_space_v0(view)  # an out-of-range action is a no-op (0)
    return view


def train(args: argparse.Namespace) -> None:
    for seed in args.seeds:
        out = RUNS / args.env.replace("/", "_") / f"seed{seed}"
        if (out / "eval.json").exists():
            print(f"{out} is done")
            continue
        out.mkdir(parents=True, exist_ok=True)
        command = f"python experiments/clients/sb3_supersuit.py train --env {args.env} "
        command += f"--seeds {seed} --steps {args.steps} --num-cpus {args.num_cpus}"
        (out / "command.txt").write_text(command + "\n")
        view = padded(args.env)
        copies = ss.concat_vec_envs_v1(
            ss.pettingzoo_env_to_vec_env_v1(view),
            args.copies,
            num_cpus=args.num_cpus,
            base_class="stable_baselines3",
        )
        # SuperSuit's SB3 wrapper drops seeds (and PPO(seed=...) fails on its missing
        # ``seed``): one seeded reset of the copies, whose later resets continue the stream.
        copies.venv.reset(seed=seed)
        set_random_seed(seed)
        model = PPO(
            "MlpPolicy", copies, n_steps=256, batch_size=1024, learning_rate=3e-4,
            ent_coef=0.01, device="cpu", verbose=0,
        )  # fmt: skip
        start = time.perf_counter()
        # SB3 counts vector entries: one per agent (and copy).
        model.learn(total_timesteps=args.steps * len(view.possible_agents))
        seconds = time.perf_counter() - start
        copies.close()
        model.save(out / "model.zip")
        result = {
            "env": args.env,
            "seed": seed,
            "env_steps": args.steps,
            "train_seconds": seconds,
            "trained": evaluate(args.env, model, args.episodes, seed),
            "random": evaluate(args.env, None, args.episodes, seed),
        }
        (out / "eval.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result))


def evaluate(env_name: str, model: PPO | None, episodes: int, seed: int) -> float:
    """Mean return per agent per episode: the greedy ``model`` or, if None, random actions."""
    view = padded(env_name)
    rng = np.random.default_rng(seed)
    total = 0.0
    for episode in range(episodes):
        obs, _ = view.reset(seed=10_000 + 100 * seed + episode)
        while view.agents:
            if model is None:
                actions = {a: int(rng.integers(view.action_space(a).n)) for a in view.agents}
            else:
                batch = np.stack([obs[a] for a in view.agents])
                chosen, _ = model.predict(batch, deterministic=True)
                actions = dict(zip(view.agents, chosen.tolist(), strict=True))
            obs, rewards, *_ = view.step(actions)
            total += sum(rewards.values()) / len(view.possible_agents)
    return total / episodes


def report(args: argparse.Namespace) -> None:
    lines = [
        "| env | seeds | env-steps per seed | PPO, greedy | random actions | "
        "training env-steps/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for env_dir in sorted(RUNS.iterdir()):
        runs = [json.loads(p.read_text()) for p in sorted(env_dir.glob("seed*/eval.json"))]
        if not runs:
            continue
        trained, random = (mean_ci([r[k] for r in runs]) for k in ("trained", "random"))
        rate = np.mean([r["env_steps"] / r["train_seconds"] for r in runs])
        lines.append(
            f"| `{runs[0]['env']}` | {len(runs)} | {runs[0]['env_steps']:,} | "
            f"{trained[0]:.2f} ± {trained[1]:.2f} | {random[0]:.2f} ± {random[1]:.2f} | "
            f"{rate:,.0f} |"
        )
    table = "\n".join(lines)
    (HERE / "results.md").write_text(table + "\n")
    print(table)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("train")
    p.add_argument("--env", default="mpe/spread")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--steps", type=int, default=300_000, help="env-steps per seed, all copies")
    p.add_argument("--copies", type=int, default=8)
    p.add_argument("--num-cpus", type=int, default=0, help="worker processes (0: this one)")
    p.add_argument("--episodes", type=int, default=50)
    sub.add_parser("report")
    args = parser.parse_args()
    if args.what == "train":
        print(shlex.join([Path(sys.executable).name, *sys.argv]))
        train(args)
    else:
        report(args)


if __name__ == "__main__":
    # JAX cannot run in a forked process: worker processes must be spawned.
    multiprocessing.set_start_method("spawn")
    main()
