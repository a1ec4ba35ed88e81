"""Decentralised full-pose control of a cable-suspended load by N quadrotors (Zeng et al. 2025).

Each agent is a quadrotor hanging a 1 m rod from 3 cm below its centre of mass to a corner
of a 1.4 kg box. An action is the world acceleration setpoint and the body rates p, q of the
quadrotor's INDI controller (``quadrotor.py``); physics (``rigid.py``) runs at 300 Hz, the
policy at 100 Hz. Agents observe the load's pose, their own state and the goal error,
stacked over the last 3 steps, and nothing about each other; the critic gets the full state.
All agents share the team reward (weights x 0.01 s):

    1.5 exp(-1.5 |e_p|) + 1.5 exp(-1.5 e_R) + 0.5 exp(-|da / N|^2) + 0.5 exp(-|[p, q]| / N)
    + 0.5 exp(-max rotor thrust / 6.25) + 0.5 (1 - exp(-3 min_i d_i))

with ``d_i`` the distance from the load centre to where drone ``i``'s thrust axis meets the
load's plane (keeping downwash off the load). Episodes terminate when a body flies below
0.1 m, a cable folds (> 90 deg at a drone, > 135 deg at the load), cables come within
0.2 m, drones within ``min_drone_distance`` or a drone leaves the 5 m box; they are truncated
after 20 s.

Choices where the reference differs or is silent: the rods' 23.6 g is lumped half into
each end body; episodes start in the exact static equilibrium (load level, cables meeting
at one point below the load's centre of mass with a mean tilt of 0.5 rad, rotor speeds and
tensions balanced); actions are clipped to a box; contacts other than those listed are not
modelled; a failed MAV leaves the team, released from its cable or hanging from it
(``fail_mode``); a released MAV falls until it reaches the ground (z = 0) and lies there.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnasium import spaces

from envs.cable_load import rigid
from envs.cable_load.quadrotor import Quadrotor
from envs.cable_load.render import render_scene
from envs.cable_load.rigid import E3, GRAVITY, Bodies, Cables, Inertia, rotate_e3
from envs.core import Array, MultiAgentEnv, SharedSpaces, TimeStep

LOAD_SIZE = np.array([0.55, 0.45, 0.15])  # box (m)
LOAD_MASS = 1.4
LOAD_INERTIA = np.array([0.02625, 0.037917, 0.058917])
LOAD_COM = np.array([0.0, 0.0, 0.06])  # in the box frame, from the box's bottom centre
ROD_MASS = 0.0236
GROUND = 0.1  # m: a body (the load or an attached MAV) this low ends the episode
FAIL_MODES = ("released", "dead_weight", "either")
DRONE_ANCHOR = np.array([0.0, 0.0, -0.03])
REWARD_WEIGHTS = {
    "position": 1.5,
    "orientation": 1.5,
    "smoothness": 0.5,
    "body_rates": 0.5,
    "effort": 0.5,
    "downwash": 0.5,
}


def load_anchors(num_agents: int) -> np.ndarray:
    """[N, 3] cable attachment points on the box's top face, from the load's centre of mass."""
    top = 0.14
    if num_agents == 3:  # the reference's flycrane
        xy = np.array([[0.27, 0.22], [0.27, -0.22], [-0.27, 0.0]])
    elif num_agents == 4:
        xy = np.array([[0.27, 0.22], [0.27, -0.22], [-0.27, -0.22], [-0.27, 0.22]])
    else:  # spread on the ellipse through the corners' axes
        angle = 2 * np.pi * np.arange(num_agents) / num_agents
        xy = np.stack([0.27 * np.cos(angle), 0.22 * np.sin(angle)], -1)
    return np.concatenate([xy, np.full((num_agents, 1), top)], -1) - LOAD_COM


def equilibrium_cables(anchors: np.ndarray, tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """Cable directions ``[N, 3]`` (load frame, load to drone) and tensions per kg of load ``[N]``.

    The cables point away from one point ``(0, 0, -h)`` below the centre of mass, so the
    load hangs level; ``h`` gives a mean tilt of ``tilt`` rad. Tensions balance gravity
    (least norm when ``N > 3``).
    """
    radius = np.linalg.norm(anchors[:, :2], axis=-1)

    def mean_tilt(h):
        return np.mean(np.arctan2(radius, anchors[:, 2] + h))

    lo, hi = 1e-3, 1e3
    for _ in range(100):  # mean tilt decreases with h
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if mean_tilt(mid) > tilt else (lo, mid)
    direction = anchors - np.array([0.0, 0.0, -lo])
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    tension = np.linalg.lstsq(direction.T, GRAVITY * E3, rcond=None)[0]
    if np.any(tension <= 0):
        raise ValueError("this cable layout has no equilibrium with all cables in tension")
    return direction, tension


def landed(b: Bodies, attached: Array) -> Bodies:
    """``b`` with each released MAV (not ``attached [N]``) that reached the ground lying at
    rest on it, instead of falling on (which would grow the critic's state without bound)."""
    down = jnp.concatenate([jnp.zeros(1, bool), ~attached & (b.pos[1:, 2] <= 0.0)])  # [B]
    at_rest = lambda x: jnp.where(down[:, None], 0.0, x)  # noqa: E731
    pos = b.pos.at[:, 2].set(jnp.where(down, 0.0, b.pos[:, 2]))
    return b.replace(pos=pos, vel=at_rest(b.vel), omega=at_rest(b.omega))


@struct.dataclass
class CableState:
    bodies: Bodies  # load (0) and drones (1..N)
    inertia: Inertia  # per-episode mass properties
    rotor_speed: Array  # [N, 4] rad/s
    thrusts: Array  # [N, 4] rotor thrusts of the last substep (N)
    acc: Array  # [N, 3] drones' world accelerations of the last substep
    alpha: Array  # [N, 3] drones' body angular accelerations of the last substep
    tension: Array  # [N] cable tensions of the last substep (N)
    action: Array  # [N, 5] last (clipped) action
    history: Array  # [N, H, D] observations, newest first
    goal_pos: Array  # [3]
    goal_quat: Array  # [4]
    disturbance: Array  # [3] constant world force on the load (N)
    fail_step: Array  # [] int32 policy step at which ``fail_agent`` fails (-1: never)
    fail_agent: Array  # [] int32
    fail_released: Array  # [] bool, the failure model: released (True) or dead weight
    flying: Array  # [N] bool, rotors running (the agent is in play)
    attached: Array  # [N] bool, cable attached (a released MAV's is not)
    step: Array  # [] int32


class CableLoadHover(SharedSpaces, MultiAgentEnv):
    name = "cable_load/hover"
    physics_dt = 1.0 / 300.0
    substeps = 3  # policy at 100 Hz
    render_fps = 100

    def __init__(
        self,
        num_agents: int = 3,
        max_steps: int = 2000,
        history: int = 3,
        cable_length: float = 1.0,
        tilt: float = 0.5,
        unilateral: bool = False,
        load_mass: float = LOAD_MASS,
        load_mass_range: Sequence[float] | None = None,
        disturbance: float = 0.0,
        disturbance_range: Sequence[float] | None = None,
        fail_step: int = -1,
        fail_prob: float = 0.0,
        fail_mode: str = "released",
        max_acc: float = 10.0,
        max_rate: float = 4.0,
        action_scale: float = 1.0,
        goal_tilt: float = np.pi / 4,
        goal_height: Sequence[float] = (0.5, 1.5),
        min_drone_distance: float = 0.8,
        member_mass: float = 1.0,
        member_thrust: float = 1.0,
        member_gains: float = 1.0,
    ):
        """Options:

        - ``load_mass_range``: ``(low, high)`` kg, drawn per episode instead of ``load_mass``
          (the inertia scales with the mass);
        - ``disturbance``: a constant horizontal force on the load, as a fraction of its weight,
          in a random direction per episode; ``disturbance_range``: ``(low, high)``, its size
          drawn per episode instead (push-aware training);
        - ``fail_step``: policy step at which a random MAV fails (-1: never); ``fail_prob``:
          instead, the probability per episode that a random MAV fails at a uniformly drawn
          step of the episode (failure-aware training); ``fail_mode``: ``released`` (its
          rotors stop and its cable is released: it drops out), ``dead_weight`` (its rotors
          spin down with the motor lag and it hangs from its cable) or ``either`` (one of the
          two, drawn per episode);
        - ``max_acc`` (m/s^2), ``max_rate`` (rad/s): the action box; ``action_scale``
          multiplies the policy's actions (the action space is the box divided by it);
        - ``goal_tilt``: goal roll and pitch are drawn from ``[-goal_tilt, goal_tilt]``;
          ``goal_height``: ``(low, high)`` m, the goal's height is drawn from it (the load
          starts between 0.5 and 1.5 m);
        - ``member_mass``, ``member_thrust``, ``member_gains``: a heterogeneous member,
          ``mav_0``, whose mass (and inertia), thrust limits and attitude and rate gains are
          the others' times these factors.
        """
        if not 3 <= num_agents <= 8:
            raise ValueError(f"num_agents must be in [3, 8], got {num_agents}")
        if max_steps < 1 or history < 1:
            raise ValueError(f"max_steps and history must be >= 1, got {max_steps}, {history}")
        if load_mass_range is not None:
            low, high = load_mass_range
            if not 0 < low <= high:
                raise ValueError(f"load_mass_range must be 0 < low <= high, got {load_mass_range}")
        if load_mass <= 0 or action_scale <= 0 or max_acc <= 0 or max_rate <= 0:
            raise ValueError("load_mass, action_scale, max_acc and max_rate must be > 0")
        if disturbance_range is not None:
            low, high = disturbance_range
            if not 0 <= low <= high:
                raise ValueError(
                    f"disturbance_range must be 0 <= low <= high, got {disturbance_range}"
                )
        if min(member_mass, member_thrust, member_gains) <= 0:
            raise ValueError(
                "member_mass, member_thrust and member_gains must be > 0, got "
                f"{member_mass}, {member_thrust}, {member_gains}"
            )
        if not 0 < goal_height[0] <= goal_height[1]:
            raise ValueError(f"goal_height must be 0 < low <= high, got {goal_height}")
        if not 0.0 <= fail_prob <= 1.0:
            raise ValueError(f"fail_prob must be in [0, 1], got {fail_prob}")
        if fail_step >= 0 and fail_prob > 0:
            raise ValueError("give fail_step (a fixed step) or fail_prob (random), not both")
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {FAIL_MODES}, got {fail_mode!r}")
        n = num_agents
        self.agents = tuple(f"mav_{i}" for i in range(n))
        self.max_steps = max_steps
        self.history = history
        self.load_mass = load_mass
        self.load_mass_range = None if load_mass_range is None else tuple(load_mass_range)
        self.disturbance = disturbance
        self.disturbance_range = None if disturbance_range is None else tuple(disturbance_range)
        self.fail_step = fail_step
        self.fail_prob = fail_prob
        self.fail_mode = fail_mode
        self.goal_tilt = goal_tilt
        self.goal_height = tuple(goal_height)
        self.min_drone_distance = min_drone_distance
        self.action_scale = action_scale
        self.quad = Quadrotor().team(n, 0, member_mass, member_thrust, member_gains)
        self.cables = Cables(
            load_anchor=load_anchors(n),
            drone_anchor=DRONE_ANCHOR,
            length=np.full(n, cable_length),
            unilateral=unilateral,
        )
        self.cable_dir, self.tension_per_kg = equilibrium_cables(self.cables.load_anchor, tilt)
        self.drone_mass = self.quad.mass + ROD_MASS / 2  # [N]

        self.step_obs_dim = 3 + 9 + n + 3 + 9 + 3 + 3 + 3 + 9
        self.state_dim = 18 + 18 * n + 12
        high = np.array([max_acc] * 3 + [max_rate] * 2, np.float32) / action_scale
        self._action_space = spaces.Box(-high, high, dtype=np.float32)
        self._obs_space = spaces.Box(-np.inf, np.inf, (history * self.step_obs_dim,), np.float32)

    # --- reset ------------------------------------------------------------------------

    def mass_properties(self, load_mass: Array) -> Inertia:
        n = self.num_agents
        load = load_mass + n * ROD_MASS / 2
        mass = jnp.concatenate([load[None], jnp.asarray(self.drone_mass, jnp.float32)])
        inertia = jnp.concatenate([LOAD_INERTIA[None] * load / LOAD_MASS, self.quad.inertia])
        return Inertia.of(mass, inertia)

    def equilibrium(self, load_pos: Array, load_yaw: Array, inertia: Inertia):
        """Bodies at rest in static equilibrium and the rotor speeds ``[N, 4]`` that hold it."""
        q_load = rigid.quat_from_axis_angle(jnp.asarray(E3), load_yaw)
        R_load = rigid.quat_to_matrix(q_load)
        up = rigid.rotate(R_load, self.cable_dir)  # [N, 3]
        tension = self.tension_per_kg / inertia.inv_mass[0]
        on_drone = (
            load_pos
            + rigid.rotate(R_load, self.cables.load_anchor)
            + up * self.cables.length[:, None]
        )
        thrust = self.drone_mass[:, None] * GRAVITY * E3 + tension[:, None] * up  # [N, 3]
        collective = jnp.linalg.norm(thrust, axis=-1)
        q_drone = rigid.quat_tilt(thrust / collective[:, None])
        R_drone = rigid.quat_to_matrix(q_drone)
        pos = on_drone - rigid.rotate(R_drone, self.cables.drone_anchor)
        cable_torque = jnp.cross(
            self.cables.drone_anchor, rigid.unrotate(R_drone, -tension[:, None] * up)
        )
        speeds = self.quad.speeds_for(collective, -cable_torque)
        n1 = self.num_agents + 1
        bodies = Bodies(
            pos=jnp.concatenate([load_pos[None], pos]),
            quat=jnp.concatenate([q_load[None], q_drone]),
            vel=jnp.zeros((n1, 3)),
            omega=jnp.zeros((n1, 3)),
        )
        return bodies, speeds

    def start_and_goal(self, keys: Array) -> tuple[Array, Array, Array, Array]:
        """The load's start position ``[3]`` and yaw ``[]``, the goal position ``[3]`` and
        orientation ``[4]``, drawn from ``keys [5]``."""
        low, high = np.array([-1.0, -1.0, 0.5]), np.array([1.0, 1.0, 1.5])
        load_pos = jax.random.uniform(keys[0], (3,), minval=low, maxval=high)
        load_yaw = jax.random.uniform(keys[1], (), minval=-np.pi, maxval=np.pi)
        low_goal = np.array([-1.0, -1.0, self.goal_height[0]])
        high_goal = np.array([1.0, 1.0, self.goal_height[1]])
        goal_pos = jax.random.uniform(keys[2], (3,), minval=low_goal, maxval=high_goal)
        roll, pitch = jax.random.uniform(
            keys[3], (2,), minval=-self.goal_tilt, maxval=self.goal_tilt
        )
        yaw = jax.random.uniform(keys[4], (), minval=-np.pi, maxval=np.pi)
        return load_pos, load_yaw, goal_pos, rigid.quat_from_euler(roll, pitch, yaw)

    def reset(self, key: Array) -> tuple[CableState, TimeStep]:
        n = self.num_agents
        keys = jax.random.split(key, 8)
        load_pos, load_yaw, goal_pos, goal_quat = self.start_and_goal(keys[:5])
        if self.load_mass_range is None:
            load_mass = jnp.asarray(self.load_mass, jnp.float32)
        else:
            load_mass = jax.random.uniform(
                keys[5], (), minval=self.load_mass_range[0], maxval=self.load_mass_range[1]
            )
        inertia = self.mass_properties(load_mass)
        k_dir, k_size, k_agent, k_fails, k_when, k_mode = jax.random.split(keys[6], 6)
        heading = jax.random.uniform(k_dir, (), minval=-np.pi, maxval=np.pi)
        if self.disturbance_range is None:
            size = jnp.asarray(self.disturbance, jnp.float32)
        else:
            size = jax.random.uniform(
                k_size, (), minval=self.disturbance_range[0], maxval=self.disturbance_range[1]
            )
        push = size * load_mass * GRAVITY
        if self.fail_prob > 0:
            when = jax.random.randint(k_when, (), 0, self.max_steps)
            fail_step = jnp.where(jax.random.uniform(k_fails) < self.fail_prob, when, -1)
        else:
            fail_step = jnp.asarray(self.fail_step, jnp.int32)
        bodies, speeds = self.equilibrium(load_pos, load_yaw, inertia)
        thrusts = self.quad.thrusts(speeds)
        state = CableState(
            bodies=bodies,
            inertia=inertia,
            rotor_speed=speeds,
            thrusts=thrusts,
            acc=jnp.zeros((n, 3)),
            alpha=jnp.zeros((n, 3)),
            tension=self.tension_per_kg / inertia.inv_mass[0],
            action=jnp.zeros((n, 5)),
            history=jnp.zeros((n, self.history, self.step_obs_dim)),
            goal_pos=goal_pos,
            goal_quat=goal_quat,
            disturbance=push * jnp.stack([jnp.cos(heading), jnp.sin(heading), 0.0]),
            fail_step=fail_step.astype(jnp.int32),
            fail_agent=jax.random.randint(k_agent, (), 0, n),
            fail_released=jax.random.bernoulli(k_mode)
            if self.fail_mode == "either"
            else jnp.asarray(self.fail_mode == "released"),
            flying=jnp.ones(n, bool),
            attached=jnp.ones(n, bool),
            step=jnp.array(0, jnp.int32),
        )
        obs = self._step_obs(state)
        state = state.replace(history=jnp.repeat(obs[:, None], self.history, 1))
        return state, self._timestep(state, jnp.zeros(n), jnp.array(False))

    # --- step -------------------------------------------------------------------------

    def physics(self, state: CableState, action: Array) -> CableState:
        """``substeps`` physics steps under one action ``[N, 5]`` (physical units)."""
        quad = self.quad
        running = state.flying[:, None]
        b, speed, thrusts, acc, alpha = (
            state.bodies,
            state.rotor_speed,
            state.thrusts,
            state.acc,
            state.alpha,
        )
        for _ in range(self.substeps):
            command = quad.indi(
                b.quat[1:], b.omega[1:], acc, alpha, thrusts, action[:, :3], action[:, 3:]
            )
            speed = quad.motor(speed, jnp.where(running, command, 0.0), self.physics_dt)
            speed = jnp.where(running | ~state.fail_released, speed, 0.0)  # released: at once
            thrusts = quad.thrusts(speed)
            collective, torque = quad.wrench(thrusts)
            force = jnp.concatenate(
                [state.disturbance[None], rotate_e3(b.quat[1:]) * collective[:, None]]
            )
            torque = jnp.concatenate([jnp.zeros((1, 3)), torque])
            b, acc_all, alpha_all, tension = rigid.step(
                b, state.inertia, self.cables, force, torque, state.attached, self.physics_dt
            )
            b = landed(b, state.attached)
            acc, alpha = acc_all[1:], alpha_all[1:]
        return state.replace(
            bodies=b, rotor_speed=speed, thrusts=thrusts, acc=acc, alpha=alpha, tension=tension
        )

    def clip_action(self, actions: Array) -> Array:
        high = self._action_space.high
        return jnp.clip(actions.astype(jnp.float32), -high, high) * self.action_scale

    def step(self, key: Array, state: CableState, actions: Array) -> tuple[CableState, TimeStep]:
        action = self.clip_action(actions)
        failing = (state.step == state.fail_step) & (
            jnp.arange(self.num_agents) == state.fail_agent
        )
        released = failing & state.fail_released
        state = state.replace(flying=state.flying & ~failing, attached=state.attached & ~released)
        prev_action = state.action
        state = self.physics(state, action)
        state = state.replace(action=action, step=state.step + 1)
        obs = self._step_obs(state)
        state = state.replace(history=jnp.concatenate([obs[:, None], state.history[:, :-1]], 1))
        reward = self.reward(state, action - prev_action)
        return state, self._timestep(state, reward, self.terminal(state))

    # --- observations, reward, termination -----------------------------------------------------

    def _pose_error(self, state: CableState) -> tuple[Array, Array, Array]:
        """Goal position error ``[3]``, ``R_goal R_load^T [3, 3]`` and the angle error (rad)."""
        b = state.bodies
        R_goal = rigid.quat_to_matrix(state.goal_quat)
        R_load = rigid.quat_to_matrix(b.quat[0])
        angle = rigid.quat_angle(state.goal_quat, b.quat[0])
        return state.goal_pos - b.pos[0], rigid.matmul(R_goal, R_load.T), angle

    def _world_rates(self, b: Bodies) -> Array:
        return rigid.rotate(rigid.quat_to_matrix(b.quat), b.omega)

    def _step_obs(self, state: CableState) -> Array:
        """[N, D]: load pose, agent id, own pose and velocities, goal errors (world frame)."""
        n, b = self.num_agents, state.bodies
        R = rigid.quat_to_matrix(b.quat).reshape(n + 1, 9)
        pos_err, rot_err, _ = self._pose_error(state)
        shared = lambda *xs: jnp.broadcast_to(jnp.concatenate(xs), (n, sum(x.size for x in xs)))  # noqa: E731
        obs = jnp.concatenate(
            [
                shared(b.pos[0], R[0]),
                jnp.eye(n),
                b.pos[1:],
                R[1:],
                b.vel[1:],
                self._world_rates(b)[1:],
                shared(pos_err, rot_err.reshape(9)),
            ],
            -1,
        )
        return jnp.where(state.flying[:, None], obs, 0.0)

    def global_state(self, state: CableState) -> Array:
        b = state.bodies
        R = rigid.quat_to_matrix(b.quat).reshape(-1, 9)
        w = self._world_rates(b)
        pos_err, rot_err, _ = self._pose_error(state)
        return jnp.concatenate(
            [
                b.pos[0], R[0], b.vel[0], w[0],
                b.pos[1:].ravel(), R[1:].ravel(), b.vel[1:].ravel(), w[1:].ravel(),
                pos_err, rot_err.ravel(),
            ]
        )  # fmt: skip

    def downwash_distance(self, state: CableState) -> Array:
        """[N] distance from the load centre to where each drone's thrust axis meets the load plane."""
        b = state.bodies
        normal = rotate_e3(b.quat[0])
        axis = rotate_e3(b.quat[1:])  # [N, 3]
        along = jnp.sum(axis * normal, -1)
        safe = jnp.where(jnp.abs(along) > 1e-6, along, 1e-6)
        s = jnp.sum((b.pos[0] - b.pos[1:]) * normal, -1) / safe
        hit = b.pos[1:] + s[:, None] * axis
        dist = jnp.linalg.norm(hit - b.pos[0], axis=-1)
        return jnp.where(jnp.abs(along) > 1e-6, dist, 1e3)

    def reward_terms(self, state: CableState, action_change: Array) -> dict[str, Array]:
        n = self.num_agents
        live = state.flying[:, None]
        pos_err, _, angle = self._pose_error(state)
        rates = jnp.where(live, state.action[:, 3:], 0.0)
        change = jnp.where(live, jnp.abs(action_change), 0.0) / n
        thrust = jnp.where(live, state.thrusts, 0.0)
        downwash = jnp.where(state.flying, self.downwash_distance(state), jnp.inf)
        return {
            "position": jnp.exp(-1.5 * jnp.linalg.norm(pos_err)),
            "orientation": jnp.exp(-1.5 * angle),
            "smoothness": jnp.exp(-jnp.sum(change**2)),
            "body_rates": jnp.exp(-jnp.linalg.norm(rates) / n),
            "effort": jnp.exp(-thrust.max() / Quadrotor.max_rotor_thrust),  # the nominal MAV's
            "downwash": 1.0 - jnp.exp(-3.0 * downwash.min()),
        }

    def reward(self, state: CableState, action_change: Array) -> Array:
        terms = self.reward_terms(state, action_change)
        total = (
            sum(REWARD_WEIGHTS[k] * v for k, v in terms.items()) * self.substeps * self.physics_dt
        )
        return jnp.full(self.num_agents, total, jnp.float32)

    def terminations(self, state: CableState) -> dict[str, Array]:
        """Each termination condition, ``[]`` bool. The cable angles and the bounds concern
        flying MAVs; the ground, the cables' and the MAVs' distances every attached one (a
        failed MAV hanging as dead weight can still crash the team)."""
        b, flying, attached = state.bodies, state.flying, state.attached
        on_load, on_drone, d = self.cables.geometry(b)
        n = d / jnp.linalg.norm(d, axis=-1, keepdims=True)  # drone -> load
        drone_z = rotate_e3(b.quat[1:])
        load_z = rotate_e3(b.quat[0])
        # Cables sampled at 8 points each: the smallest distance between two of them.
        s = jnp.linspace(0.0, 1.0, 8)[:, None]
        points = on_load[:, None] + s * (on_drone - on_load)[:, None]  # [N, 8, 3]
        gap = jnp.linalg.norm(points[:, None, :, None] - points[None, :, None, :], axis=-1)
        pair = attached[:, None] & attached[None, :] & ~np.eye(self.num_agents, dtype=bool)
        cable_gap = jnp.where(pair, gap.min((-1, -2)), jnp.inf).min()
        drone_gap = jnp.linalg.norm(b.pos[1:, None] - b.pos[None, 1:], axis=-1)
        drone_gap = jnp.where(pair, drone_gap, jnp.inf).min()
        return {
            "ground": (b.pos[0, 2] < GROUND) | jnp.any(attached & (b.pos[1:, 2] < GROUND)),
            "drone_cable_angle": jnp.any(flying & (jnp.sum(n * drone_z, -1) > 0.0)),
            "load_cable_angle": jnp.any(
                flying & (jnp.sum(-n * load_z, -1) < np.cos(np.radians(135)))
            ),
            "cable_distance": cable_gap < 0.2,
            "drone_distance": drone_gap < self.min_drone_distance,
            "out_of_bounds": jnp.any(flying & jnp.any(jnp.abs(b.pos[1:]) > 5.0, -1)),
            "not_finite": ~jnp.all(jnp.isfinite(b.pos)),
        }

    def terminal(self, state: CableState) -> Array:
        return jnp.any(jnp.stack(list(self.terminations(state).values())))

    def metrics(self, state: CableState, terminated: Array) -> dict[str, Array]:
        """Pose errors; success: within 0.1 m and 10 degrees of the goal and not terminated;
        survived: not terminated (an episode ends, after 20 s, a success or a survival when its
        last step is one)."""
        pos_err, _, angle = self._pose_error(state)
        pos_err = jnp.linalg.norm(pos_err)
        angle = jnp.degrees(angle)
        return {
            "position_error": pos_err,
            "orientation_error_deg": angle,
            "success": ((pos_err < 0.1) & (angle < 10.0) & ~terminated).astype(jnp.float32),
            "survived": (~terminated).astype(jnp.float32),
        }

    def _timestep(self, state: CableState, reward: Array, terminated: Array) -> TimeStep:
        n = self.num_agents
        return TimeStep(
            obs=jnp.where(state.flying[:, None], state.history.reshape(n, -1), 0.0),
            state=self.global_state(state).astype(jnp.float32),
            reward=reward.astype(jnp.float32),
            terminated=terminated,
            truncated=(state.step >= self.max_steps) & ~terminated,
            active=state.flying,
            action_mask=jnp.ones((n, 5), bool),
            info=self.metrics(state, terminated),
        )

    # --- rendering --------------------------------------------------------------------------

    def render(self, state: CableState, resolution: int = 400) -> np.ndarray:
        state = jax.device_get(state)
        on_load, on_drone, _ = self.cables.geometry(state.bodies)
        return render_scene(
            load_pos=np.asarray(state.bodies.pos[0]),
            load_R=np.asarray(rigid.quat_to_matrix(state.bodies.quat[0])),
            goal_pos=np.asarray(state.goal_pos),
            goal_R=np.asarray(rigid.quat_to_matrix(state.goal_quat)),
            box_size=LOAD_SIZE,
            box_offset=-LOAD_COM + np.array([0.0, 0.0, LOAD_SIZE[2] / 2]),
            anchors=np.asarray(on_load),
            drone_pos=np.asarray(state.bodies.pos[1:]),
            drone_R=np.asarray(rigid.quat_to_matrix(state.bodies.quat[1:])),
            drone_anchors=np.asarray(on_drone),
            arm=self.quad.arm,
            attached=np.asarray(state.attached),
            resolution=resolution,
        )
