"""IPPO and MAPPO on mpe/spread against JaxMARL's own IPPO-FF, same hyperparameters.

    python experiments/ippo_mpe/run.py --jaxmarl /path/to/JaxMARL [--total-timesteps 2000000]

Trains our IPPO and MAPPO through the real trainer (``experiment=ippo_mpe`` /
``experiment=mappo_mpe``: JaxMARL's IPPO-FF MPE hyperparameters, 3 seeds) and JaxMARL's
``baselines/IPPO/ippo_ff_mpe.py`` ``make_train`` (3 seeds), then writes the table
(``results.md``, ``results.json``) and the curves (``curves.png``) here. Our runs that
already finished (a ``summary.json`` in their folder) are reused. Returns are per
agent (JaxMARL logs the team return x N: it is divided by N). The final return of a seed is
the mean over its last 10 updates.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
from hydra import compose, initialize_config_dir

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "scripts"))

from benchmark import jaxmarl_ippo  # noqa: E402

from marl.config import CONFIG_DIR, register_configs, to_config  # noqa: E402
from marl.evaluate import mean_ci  # noqa: E402
from marl.plot import load_curve, plot_runs  # noqa: E402
from marl.train import train  # noqa: E402

LAST = 10  # updates averaged for a seed's final return


def ours(experiment: str, total_timesteps: int, seeds: int) -> Path:
    if (HERE / experiment / "summary.json").exists():  # finished earlier: reuse it
        return HERE / experiment
    register_configs()
    with initialize_config_dir(str(CONFIG_DIR), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                f"experiment={experiment}",
                f"algo.total_timesteps={total_timesteps}",
                f"num_seeds={seeds}",
                f"run_dir={HERE / experiment}",
                "logger.wandb.mode=disabled",
                "logger.progress=false",
                "keep_checkpoints=1",
            ],
        )
    return train(to_config(cfg))


def jaxmarl(checkout: str, total_timesteps: int, seeds: int) -> Path:
    fn, keys = jaxmarl_ippo(checkout, total_timesteps, seeds)
    returns = jax.device_get(fn(keys)["metrics"]["returned_episode_returns"])  # [S, U] update means
    per_agent = (
        returns.reshape(*returns.shape[:2], -1).mean(-1) / 3
    )  # its log wrapper multiplies by N = 3
    out = HERE / "jaxmarl_ippo"
    out.mkdir(exist_ok=True)
    with (out / "metrics.jsonl").open("w") as f:
        for u in range(per_agent.shape[1]):
            seeds_u = per_agent[:, u].tolist()
            f.write(
                json.dumps(
                    {
                        "update": u + 1,
                        "env_steps": (u + 1) * 2048,
                        "return": float(np.mean(seeds_u)),
                        "return/seeds": seeds_u,
                    }
                )
                + "\n"
            )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jaxmarl", required=True, help="path of a JaxMARL checkout")
    p.add_argument("--total-timesteps", type=int, default=2_000_000)
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    runs = {
        "ours IPPO": ours("ippo_mpe", a.total_timesteps, a.seeds),
        "ours MAPPO": ours("mappo_mpe", a.total_timesteps, a.seeds),
        "JaxMARL IPPO": jaxmarl(a.jaxmarl, a.total_timesteps, a.seeds),
    }
    rows = {}
    for name, run in runs.items():
        steps, values = load_curve(run)
        final = np.nanmean(values[-LAST:], 0)  # [seeds]
        rows[name] = {
            "env_steps": int(steps[-1]),
            "final_return": mean_ci(final),
            "per_seed": final.tolist(),
        }
    plot_runs(list(runs.values()), HERE / "curves.png", labels=list(runs))
    (HERE / "results.json").write_text(json.dumps(rows, indent=2))
    lines = [
        "| system | env steps per seed | final return per agent (mean ± 95% CI over seeds) | per seed |",
        "| --- | ---: | ---: | --- |",
    ]
    for name, r in rows.items():
        m, ci = r["final_return"]
        lines.append(
            f"| {name} | {r['env_steps']:,} | {m:.2f} ± {ci:.2f} | {', '.join(f'{x:.2f}' for x in r['per_seed'])} |"
        )
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
