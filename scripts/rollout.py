"""Random-policy rollouts of any registered environment: statistics and a GIF.

    python scripts/rollout.py                                  # mpe/spread
    python scripts/rollout.py --env mpe/tag --option num_good=2 --gif-episodes 2

Runs ``--num-envs`` episodes in parallel under ``jit``/``vmap`` to report the random
baseline (mean episode return per agent with a 95% CI, task metrics), and renders the
first ``--gif-episodes`` of them to ``<out>/rollout.gif``.
"""

from __future__ import annotations

import argparse
import ast
import json
import time
from pathlib import Path

import imageio.v3 as iio
import jax
import numpy as np

import envs
from envs.wrappers import vectorize


def parse_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"options look like key=value, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--env", default="mpe/spread", help=f"one of {envs.list_envs()}")
    parser.add_argument(
        "--option",
        type=parse_option,
        action="append",
        default=[],
        help="environment option key=value (repeatable)",
    )
    parser.add_argument("--num-envs", type=int, default=1024)
    parser.add_argument("--gif-episodes", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default runs/rollout-<env>")
    args = parser.parse_args()

    env = envs.make(args.env, **dict(args.option))
    out = args.out or Path("runs") / f"rollout-{args.env.replace('/', '-')}"
    out.mkdir(parents=True, exist_ok=True)
    steps = int(env.max_steps)
    venv = vectorize(env, args.num_envs)

    def sample(key):
        if env.discrete:
            return jax.random.randint(key, (args.num_envs, env.num_agents), 0, env.action_sizes)
        return jax.random.uniform(key, (args.num_envs, env.num_agents, env.action_dim))

    @jax.jit
    def run(key):
        def body(state, key):
            k_act, k_step = jax.random.split(key)
            next_state, ts = venv.step(k_step, state, sample(k_act))
            return next_state, (state, ts)

        k_reset, k_run = jax.random.split(key)
        state, _ = venv.reset(k_reset)
        return jax.lax.scan(body, state, jax.random.split(k_run, steps))[1]

    start = time.perf_counter()
    states, ts = jax.device_get(run(jax.random.PRNGKey(args.seed)))
    seconds = time.perf_counter() - start

    returns = ts.info["episode_return"][-1].mean(-1)  # [B] mean over agents, episode end
    ci = 1.96 * returns.std(ddof=1) / np.sqrt(len(returns))
    metrics = {k: float(v[-1].mean()) for k, v in ts.info.items() if v.ndim == 2}
    summary = {
        "env": args.env,
        "options": dict(args.option),
        "episodes": args.num_envs,
        "mean_return_per_agent": float(returns.mean()),
        "ci95": float(ci),
        "final_step_metrics": metrics,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))

    frames = []
    for i in range(min(args.gif_episodes, args.num_envs)):
        for t in range(steps):
            frames.append(venv.render(jax.tree.map(lambda x, t=t: x[t], states), index=i))
    gif = out / "rollout.gif"
    iio.imwrite(gif, np.stack(frames), duration=100, loop=0)

    print(
        f"{args.env}: {args.num_envs} random-policy episodes of {steps} steps in {seconds:.1f} s "
        "(including compile)"
    )
    print(f"  mean episode return per agent {returns.mean():.2f} ± {ci:.2f} (95% CI)")
    for k, v in metrics.items():
        print(f"  {k} at the last step: {v:.3f}")
    print(f"  wrote {gif} and {out / 'summary.json'}")


if __name__ == "__main__":
    main()
