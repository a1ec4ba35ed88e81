"""The cable team's robustness table: does learned communication make 4 MAVs more robust
than observing the load alone?

    python experiments/cable_load/team.py train [--methods ...] [--seeds 3]
        [--steps N] [--chunks K]
    python experiments/cable_load/team.py report [--episodes 100]

Each method trains ``--seeds`` vmapped seeds on ``cable_load/hover4`` into ``team/<method>/``,
40M env-steps per seed unless ``STEPS`` or ``--steps`` says otherwise (a finished run is
reused, an interrupted one resumed; ``--chunks K`` stops each run after K
more of its 20 chunks, so that a run can be split across time-limited sessions). All share
the 2-core CPU settings of ``README.md`` (``CPU``: 256 envs, [128, 128] ELU networks,
lr 3e-4 / 5e-4 instead of the reference's [1024, 512, 256, 128], 4096 envs and 5e-5 / 1e-4).

- ``mappo_nominal``: MAPPO without communication, trained on the nominal task
  (``experiment=cable_hover``, 4 MAVs).
- ``mappo``: the same, trained failure- and push-aware (``experiment=cable_team``: a MAV fails
  at a random step in half the episodes; a push of up to 20% of the load's weight; no
  entropy bonus, since with the reference's 0.001 the policy's noise grew all through
  training: ``team/mappo_ent0.001``, stopped after 28M of its 40M env-steps).
- ``mappo_tuned``: ``mappo_nominal``'s final policy trained on, failure- and push-aware, for
  10M env-steps per seed (``init_from``, a fresh optimiser): ``mappo``, trained that way from
  scratch, learned slowly (entropy stuck near 5.3 nats per agent; greedy success 0.7% on its
  training distribution at 30M env-steps).
- ``mappo_tuned_released``: as ``mappo_tuned`` with every failure of the released kind: a
  MAV left hanging as dead weight reaches the ground under most goals, which ends the
  episode, so that training on it rewards holding the load above its goal.
- ``mappo_tuned_control``: as ``mappo_tuned`` on the nominal task (no failures, no push):
  the control that tells whether the fine-tunes' decline comes from the failures and pushes
  or from the fine-tune itself.
- ``mappo_tuned_fixed_std``: as ``mappo_tuned`` with the log-std kept at
  ``mappo_nominal``'s (``policy.fixed_log_std``): in every fine-tune above it rose, and it is
  one per action, shared by all states, so the noise that failure states call for would
  blur the nominal ones.
- ``mappo_tuned_push``: as ``mappo_tuned`` with the pushes alone (no failures).
- ``<method>_nominal`` and ``<method>_tuned`` for each communication method (``vq``,
  ``vqh``: VQ with hidden layers in the actor's head, ``vqs``: VQ with its encodings
  standardised before quantising, ``hammer``, ``commformer``): the recipe
  of ``mappo_nominal`` -> ``mappo_tuned``, with messages carrying what an agent cannot see
  (the other MAVs' states).

``report`` evaluates every finished run under each condition of ``evaluate_conditions.py``
(``--fail``: nominal, load mass ±30%, a push of 15.4% of the load's weight, the
heterogeneous member, one MAV lost at 5 s in both failure models; ``--episodes`` greedy and
sampled episodes per seed) and writes ``team.md`` / ``team.json``: success, survival and final
errors per condition and method, mean ± 95% CI over all episodes, and the per-seed rates;
and "Does communication help?": rliable's probability that each communication run improves
on the MAPPO run of its recipe (``BASELINE``), over seeds x conditions; and "Do the teams use
their messages?": each communication run's greedy success and survival under every
condition with its messages as sent and shuffled across episodes (``SHUFFLED``). It first
draws the training curves of every begun run (``curves``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from evaluate_conditions import evaluate

from marl.compare import compare, markdown, train_run
from marl.plot import plot_methods

HERE = Path(__file__).resolve().parent
RUNS = HERE / "team"
CPU = [
    "env.num_envs=256",
    "logger.num_chunks=20",
    "eval.every_chunks=5",
    "keep_checkpoints=1",
    "logger.wandb.mode=disabled",
    "logger.progress=false",
]
MLP = [
    "policy.actor_hidden=[128,128]",
    "policy.critic_hidden=[128,128]",
    "algo.lr=3e-4",
    "algo.groups={actor:{lr:3e-4},critic:{lr:5e-4}}",
]
NOMINAL = ["experiment=cable_hover", "env.name=cable_load/hover4"]  # 4 MAVs, no failures
AWARE = ["experiment=cable_team"]  # failure- and push-aware
COMM = {  # a communication method's overrides on top of NOMINAL or AWARE, with MLP's settings
    "vq": ["comm=vq", "comm.normalise=true"],
    # the same with hidden layers in the actor's head: with vq's linear head a symbol can only
    # shift the actions, whatever the agent sees (and vq_nominal's heads came to ignore them)
    "vqh": ["comm=vq", "comm.normalise=true", "policy.head_hidden=[64,64]"],
    # the same with the encodings standardised before quantising: vq_nominal's and
    # vqh_nominal's encodings all came to point one way, and their codes followed them
    "vqs": ["comm=vq", "comm.normalise=true", "comm.standardise=true"],
    "hammer": ["policy=hammer", "comm=messenger", "policy.activation=elu"],
}
# CommFormer has its own networks and parameter groups: experiment=cable_team_commformer,
# nominal with its failures and pushes off and cable_hover's entropy bonus.
COMMFORMER = ["experiment=cable_team_commformer", "algo.lr=3e-4"]
OFF = ["env.options.fail_prob=0.0", "env.options.disturbance_range=null"]


def start(nominal: str) -> str:
    """The override that starts a run from ``team/<nominal>``'s final policy."""
    return f"init_from=experiments/cable_load/team/{nominal}"


def tuned(nominal: str, *overrides: str) -> list[str]:
    """Run ``nominal``'s final policy trained on, failure- and push-aware unless
    ``overrides`` say otherwise."""
    return [*AWARE, *overrides, start(nominal)]


METHODS = {
    "mappo_nominal": [*NOMINAL, *MLP],
    "mappo": [*AWARE, *MLP],
    "mappo_tuned": tuned("mappo_nominal", *MLP),
    "mappo_tuned_released": [*tuned("mappo_nominal", *MLP), "env.options.fail_mode=released"],
    "mappo_tuned_control": [*tuned("mappo_nominal", *MLP), *OFF],
    "mappo_tuned_fixed_std": tuned("mappo_nominal", *MLP, "policy.fixed_log_std=true"),
    "mappo_tuned_push": [*tuned("mappo_nominal", *MLP), "env.options.fail_prob=0.0"],
    **{
        name: runs
        for m in COMM
        for name, runs in (
            (f"{m}_nominal", [*NOMINAL, *COMM[m], *MLP]),
            (f"{m}_tuned", tuned(f"{m}_nominal", *COMM[m], *MLP)),
        )
    },
    "commformer_nominal": [*COMMFORMER, *OFF, "algo.ent_coef=0.001"],
    "commformer_tuned": [*COMMFORMER, start("commformer_nominal")],
}
STEPS = {m: 10_000_000 for m in METHODS if "_tuned" in m}  # the fine-tunes; others 40M
# each communication run -> the MAPPO run of its recipe, for "Does communication help?"
BASELINE = {
    m: "mappo_tuned" if m.endswith("_tuned") else "mappo_nominal"
    for m in METHODS
    if not m.startswith("mappo")
}
# each communication run -> its overrides for "Do the teams use their messages?": every
# environment hears the messages sent in another episode (no GIF: its one episode has no
# other to hear)
SHUFFLED = {m: ["comm_options.heard=shuffled", "gif_episodes=0"] for m in BASELINE}
# table columns: statistic -> (heading, format)
COLUMNS = {
    "success": ("success", "{:.0%}"),
    "survived": ("survived (no termination in the 20 s)", "{:.0%}"),
    "position_error": ("final position error (m)", "{:.3f}"),
    "orientation_error_deg": ("final orientation error (deg)", "{:.1f}"),
}


def report(episodes: int) -> None:
    curves()
    done = {m: RUNS / m for m in METHODS if (RUNS / m / "summary.json").exists()}
    results = {method: evaluate(run, episodes, fail=True) for method, run in done.items()}
    lines = [f"# Cable team, 4 MAVs: greedy episodes ({episodes} per seed), mean ± 95% CI", ""]
    for method, run in done.items():
        lines.append(f"- `{method}`: `{(run / 'command.txt').read_text().strip()}`")
    for stat, (heading, fmt) in COLUMNS.items():
        lines += ["", f"## {heading}", "", "| condition | " + " | ".join(done) + " |"]
        lines.append("| --- |" + " ---: |" * len(done))
        for condition in next(iter(results.values()), {}):
            cells = []
            for method in done:
                res = results[method][condition]["deterministic"]
                (mean, ci), seeds = res[stat], res["per_seed"][stat]
                rate = stat in ("success", "survived")
                each = ", ".join(fmt.format(s) for s in seeds) if rate else ""
                cells.append(
                    f"{fmt.format(mean)} ± {fmt.format(ci)}" + (f" ({each})" if each else "")
                )
            lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    lines += helps(results)
    shuffled = {
        m: evaluate(run, episodes, True, *SHUFFLED[m], tag="shuffled_condition")
        for m, run in done.items()
        if m in SHUFFLED
    }
    lines += uses(results, shuffled)
    (HERE / "team.json").write_text(json.dumps(results, indent=2))
    (HERE / "team.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def begun(metrics: Path) -> bool:
    """Whether a run has logged an update (a run just started has an empty file)."""
    return metrics.exists() and metrics.stat().st_size > 0


def curves() -> None:
    """Training curves of each recipe's methods, those still training too:
    ``team_<recipe>_<metric>.png`` (the fraction of training episodes ending in success, the
    return per agent; mean ± 95% CI over seeds, a moving average over 1M env-steps)."""
    for recipe in ("nominal", "tuned"):
        runs = {
            m: [RUNS / m]
            for m in METHODS
            if m.endswith(f"_{recipe}") and begun(RUNS / m / "metrics.jsonl")
        }
        for metric in ("success", "return"):
            title = f"cable_load/hover4, {recipe}: training episodes"
            plot_methods(
                runs, HERE / f"team_{recipe}_{metric}.png", title, metric, smooth_steps=1e6
            )


def helps(results: dict) -> list[str]:
    """Per communication run and rate, rliable's probability of improvement on the MAPPO run
    of its recipe, over seeds x conditions (each a task)."""
    pairs = [(m, b) for m, b in BASELINE.items() if {m, b} <= results.keys()]
    if not pairs:
        return []
    lines = ["", "## Does communication help?", ""]
    for stat in ("success", "survived"):
        scores = {  # method -> [seeds, conditions]
            m: np.array([c["deterministic"]["per_seed"][stat] for c in res.values()]).T
            for m, res in results.items()
        }
        lines += [f"{COLUMNS[stat][0]}, each condition a task:", ""]
        lines += markdown(compare(scores, pairs)) + [""]
    return lines


def uses(results: dict, shuffled: dict) -> list[str]:
    """Greedy success and survival of each run in ``shuffled`` with its messages as sent and
    as shuffled (survival shows a team's reliance where neither way succeeds)."""
    if not shuffled:
        return []
    lines = ["", "## Do the teams use their messages?", ""]
    lines += [
        "Greedy episodes with the messages as sent and with every environment hearing the "
        "messages of another episode (`scripts/evaluate.py ... comm_options.heard=shuffled`; "
        "`RUN/eval/shuffled_conditions.md`):",
    ]
    for stat in ("success", "survived"):
        heading, fmt = COLUMNS[stat]
        lines += [
            "",
            f"| {heading} | " + " | ".join(f"{m}: sent | shuffled" for m in shuffled) + " |",
            "| --- |" + " ---: | ---: |" * len(shuffled),
        ]
        for condition in next(iter(shuffled.values())):
            cells = [
                "{} ± {}".format(*map(fmt.format, r[m][condition]["deterministic"][stat]))
                for m in shuffled
                for r in (results, shuffled)
            ]
            lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return lines


def cli(doc: str, runs: dict[str, list[str]], out: Path, report, steps: dict[str, int]) -> None:
    """``train`` / ``report`` for a table of ``runs`` (name -> overrides, paths relative to the
    repository, like ``command.txt``'s) trained into ``out/<name>/`` for ``steps[name]``
    env-steps per seed (default 40M): this script's and ``claims.py``'s command line."""
    os.chdir(HERE.parents[1])
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("what", choices=["train", "report"])
    p.add_argument("--methods", nargs="+", choices=list(runs), default=list(runs))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=None, help="env-steps per seed")
    p.add_argument("--chunks", type=int, default=None, help="stop each run after this many")
    p.add_argument("--episodes", type=int, default=100, help="report: episodes per seed")
    a = p.parse_args()
    if a.what == "report":
        return report(a.episodes)
    for m in a.methods:
        length = a.steps or steps.get(m, 40_000_000)
        run = [*runs[m], *CPU, f"algo.total_timesteps={length}", f"num_seeds={a.seeds}"]
        train_run(out / m, run, a.chunks)


if __name__ == "__main__":
    sys.exit(cli(__doc__, METHODS, RUNS, report, STEPS))
