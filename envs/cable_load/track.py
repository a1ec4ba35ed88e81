"""``cable_load/track``: the load follows a time-parameterised reference.

The hover task with its goal moving: at every policy step the goal is the reference at that
step's time, so the observation (the goal position error and ``R_goal R_load^T``) is the
hover task's, generalised to the moving reference, and a hover-trained policy can be run on
it unchanged. The episode starts with the load at rest at the reference's first point.

The reference paper tracks a figure-8 but does not give its size or period; ours (documented
choices): a figure-8 (lemniscate of Gerono) in the horizontal plane, ``size`` m wide along x
and half that along y, one loop per ``period`` s; a circle of radius ``size / 2`` m, one lap
per ``period`` s; a step sequence through the 4 corners of a ``size`` m square, each held for
``period / 4`` s. All at ``height`` m with the load level (roll, pitch and yaw 0).

``lead`` (s, default 0) shows the team the reference that far ahead as its goal: a feed-forward
for a policy trained to settle on a fixed goal, which otherwise trails a moving one by about its
settling time. Rewards follow the goal shown; every metric measures the load against the
reference now.

Tracking metrics in ``info`` (running over the episode, so the last step's value is the
episode's): ``tracking_rmse_position`` (m) and ``tracking_rmse_orientation_deg``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.cable_load.hover import CableLoadHover, CableState
from envs.core import Array, TimeStep

TRAJECTORIES = ("figure8", "circle", "steps")


@struct.dataclass
class TrackState(CableState):
    squared_errors: Array  # [2] sums over the episode: position (m^2), orientation (deg^2)


class CableLoadTrack(CableLoadHover):
    name = "cable_load/track"
    ignored_options = ("goal_tilt", "goal_height")  # hover's options for the drawn goal

    def __init__(
        self,
        trajectory: str = "figure8",
        size: float = 2.0,
        period: float = 20.0,
        height: float = 1.0,
        lead: float = 0.0,
        **hover_options,
    ):
        """``trajectory``: ``figure8``, ``circle`` or ``steps``; ``size`` (m), ``period``
        (s), ``height`` (m) and ``lead`` (s) as in the module docstring; the rest are
        ``cable_load/hover``'s options."""
        if trajectory not in TRAJECTORIES:
            raise ValueError(f"trajectory must be one of {TRAJECTORIES}, got {trajectory!r}")
        if ignored := set(self.ignored_options) & hover_options.keys():
            raise ValueError(
                f"cable_load/track's goal is its reference, not drawn: {sorted(ignored)} has no "
                "effect here (the reference's options are trajectory, size, period and height)"
            )
        if size <= 0 or period <= 0 or height <= 0:
            raise ValueError(f"size, period and height must be > 0, got {size}, {period}, {height}")
        if lead < 0:
            raise ValueError(f"lead must be >= 0 s, got {lead}")
        super().__init__(**hover_options)
        self.trajectory, self.size, self.period, self.height = trajectory, size, period, height
        self.lead = lead
        self.dt = self.substeps * self.physics_dt  # policy step (s)

    def reference(self, t: Array) -> tuple[Array, Array]:
        """The reference position ``[3]`` and orientation ``[4]`` at time ``t`` (s)."""
        phase = 2 * jnp.pi * t / self.period
        a = self.size / 2
        if self.trajectory == "figure8":
            xy = jnp.stack([a * jnp.sin(phase), a / 2 * jnp.sin(2 * phase)])
        elif self.trajectory == "circle":
            xy = a / 2 * jnp.stack([jnp.cos(phase) - 1.0, jnp.sin(phase)])
        else:
            corners = a * np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]) - a / 2
            xy = jnp.asarray(corners)[jnp.floor(4 * t / self.period).astype(jnp.int32) % 4]
        pos = jnp.concatenate([xy, jnp.full((1,), self.height)])
        return pos, jnp.array([1.0, 0.0, 0.0, 0.0])

    def start_and_goal(self, keys: Array) -> tuple[Array, Array, Array, Array]:
        start, _ = self.reference(jnp.zeros(()))
        return start, jnp.zeros(()), *self.reference(jnp.asarray(self.lead))

    def reset(self, key: Array) -> tuple[TrackState, TimeStep]:
        state, ts = super().reset(key)
        state = TrackState(**vars(state), squared_errors=jnp.zeros(2))
        return state, self._with_tracking(state, ts)

    def step(self, key: Array, state: TrackState, actions: Array) -> tuple[TrackState, TimeStep]:
        goal_pos, goal_quat = self.reference((state.step + 1) * self.dt + self.lead)
        state, ts = super().step(
            key, state.replace(goal_pos=goal_pos, goal_quat=goal_quat), actions
        )
        errors = jnp.stack([ts.info["position_error"], ts.info["orientation_error_deg"]])
        state = state.replace(squared_errors=state.squared_errors + errors**2)
        return state, self._with_tracking(state, ts)

    def metrics(self, state: CableState, terminated: Array) -> dict[str, Array]:
        """The hover task's, against the reference now (not the goal shown ``lead`` s ahead)."""
        pos, quat = self.reference(state.step * self.dt)
        return super().metrics(state.replace(goal_pos=pos, goal_quat=quat), terminated)

    def _with_tracking(self, state: TrackState, ts: TimeStep) -> TimeStep:
        rmse = jnp.sqrt(state.squared_errors / jnp.maximum(state.step, 1))
        info = {
            **ts.info,
            "tracking_rmse_position": rmse[0],
            "tracking_rmse_orientation_deg": rmse[1],
        }
        return ts.replace(info=info)
