"""Helpers to put mpe2 and our MPE into the same state (parity tests)."""

from __future__ import annotations

import importlib

import jax.numpy as jnp
import numpy as np

from envs.mpe import MPEState

# our name -> (mpe2 module, our keyword -> mpe2 keyword)
MPE2 = {
    "mpe/spread": ("simple_spread_v3", {"num_agents": "N"}),
    "mpe/speaker_listener": ("simple_speaker_listener_v4", {}),
    "mpe/reference": ("simple_reference_v3", {}),
    "mpe/tag": ("simple_tag_v3", {}),
}


def mpe2_parallel_env(name: str, **kwargs):
    module, renames = MPE2[name]
    kwargs = {renames.get(k, k): v for k, v in kwargs.items()}
    kwargs["max_cycles"] = kwargs.pop("max_steps", 25)
    return importlib.import_module(f"mpe2.{module}").parallel_env(**kwargs)


def world_of(parallel_env):
    return parallel_env.unwrapped.world


def state_from_world(world) -> MPEState:
    """Our state from an mpe2 ``World`` (agents first, then landmarks; goals as indices)."""
    entities = list(world.agents) + list(world.landmarks)
    landmarks = list(world.landmarks)
    goals = [
        landmarks.index(a._goal_b) if getattr(a, "_goal_b", None) in landmarks else 0
        for a in world.agents
    ]
    if "speaker_0" in [a.name for a in world.agents]:
        goals = [goals[0]] * len(goals)  # our listener also carries the speaker's goal
    return MPEState(
        pos=jnp.asarray(np.array([e.state.p_pos for e in entities])),
        vel=jnp.asarray(np.array([e.state.p_vel for e in entities])),
        comm=jnp.asarray(np.array([a.state.c for a in world.agents])),
        goal=jnp.asarray(goals, jnp.int32),
        step=jnp.array(0, jnp.int32),
    )
