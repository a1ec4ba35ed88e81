"""Quadrotor rotor model and the INDI low-level controller of the reference (Falcon MAV).

Rotor ``k`` at ``(±0.075, ±0.075)`` m makes thrust ``k_f w_k^2`` along body z and yaw torque
``k_m w_k^2`` with spin signs ``[+, -, +, -]``; rotor speeds follow their commands with a
first-order lag. The controller turns an action (world acceleration setpoint ``a_des [3]``
and body rates ``p, q``; yaw held at 0) into rotor speed commands every physics step:

1. external acceleration ``a_ext = a_meas - g - R e3 T_prev / m`` (cable pull, disturbances);
2. ``a_cmd = a_des - g - a_ext``; collective thrust ``m |a_cmd|``, thrust axis ``a_cmd / |a_cmd|``;
3. tilt-prioritised attitude law on ``q_e = q^-1 ⊗ q_des`` plus rate feedback;
4. incremental (INDI) roll/pitch torque ``tau_prev + J (alpha_cmd - alpha_meas)``, NDI yaw torque;
5. allocation ``f = clip(G1^-1 [T; tau], 0, f_max)``, ``w_cmd = sqrt(f / k_f)``.

The previous substep's accelerations and rotor thrusts stand in for the IMU and motor
measurements (no filters: the simulation is noise-free). Mass, inertia, thrust limits and
controller gains may be per-MAV arrays (leading axis N: a heterogeneous team, ``team``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax.numpy as jnp
import numpy as np

from envs.cable_load.rigid import (
    E3,
    GRAVITY,
    matvec,
    quat_conj,
    quat_mul,
    quat_tilt,
    rotate_e3,
)
from envs.core import Array


def _allocation(arm: float, kappa: float) -> np.ndarray:
    """G1: rotor thrusts [4] -> (collective thrust, body torque x, y, z)."""
    return np.array(
        [
            [1.0, 1.0, 1.0, 1.0],
            [arm, -arm, -arm, arm],
            [-arm, -arm, arm, arm],
            [kappa, -kappa, kappa, -kappa],
        ]
    )


def _col(x: Array | float) -> Array:
    """A per-MAV parameter ``[N]`` (or a scalar) broadcast against ``[..., N, k]``."""
    return jnp.asarray(x)[..., None]


@dataclass(frozen=True, eq=False)
class Quadrotor:
    # Scalars, or per-MAV arrays [N] ([N, 3] for inertia and k_rate): see ``team``.
    mass: float | np.ndarray = 0.6 + 4 * 0.0042  # body and rotors (kg)
    inertia: np.ndarray = field(default_factory=lambda: np.array([1.64e-3, 1.84e-3, 3.0e-3]))
    arm: float = 0.075  # rotor offset along x and y (m)
    k_f: float = 1.562522e-6  # thrust per (rad/s)^2
    k_m: float = 3.4375484e-8  # yaw torque per (rad/s)^2
    max_rotor_thrust: float | np.ndarray = 6.25  # N
    max_thrust: float | np.ndarray = 25.0  # collective, N
    motor_tau: float = 0.033  # s
    k_att_xy: float | np.ndarray = 150.0
    k_att_z: float | np.ndarray = 5.0
    k_rate: np.ndarray = field(default_factory=lambda: np.array([25.0, 25.0, 8.0]))

    def team(
        self, n: int, member: int = 0, mass: float = 1.0, thrust: float = 1.0, gains: float = 1.0
    ) -> Quadrotor:
        """``n`` MAVs, all this one except ``member``: its mass (and inertia), its thrust
        limits and its attitude and rate gains scaled by ``mass``, ``thrust``, ``gains``."""

        def scaled(value, factor):
            per_mav = np.repeat(np.asarray(value, np.float64)[None], n, 0)
            per_mav[member] *= factor
            return per_mav

        return replace(
            self,
            mass=scaled(self.mass, mass),
            inertia=scaled(self.inertia, mass),
            max_rotor_thrust=scaled(self.max_rotor_thrust, thrust),
            max_thrust=scaled(self.max_thrust, thrust),
            k_att_xy=scaled(self.k_att_xy, gains),
            k_att_z=scaled(self.k_att_z, gains),
            k_rate=scaled(self.k_rate, gains),
        )

    @property
    def G1(self) -> np.ndarray:
        return _allocation(self.arm, self.k_m / self.k_f)

    def thrusts(self, speed: Array) -> Array:
        """Rotor speeds ``[..., 4]`` (rad/s) -> rotor thrusts ``[..., 4]`` (N)."""
        return self.k_f * speed**2

    def wrench(self, thrusts: Array) -> tuple[Array, Array]:
        """Rotor thrusts ``[..., 4]`` -> collective thrust ``[...]`` and body torque ``[..., 3]``."""
        mu = matvec(self.G1, thrusts)
        return mu[..., 0], mu[..., 1:]

    def speeds_for(self, collective: Array, torque: Array) -> Array:
        """Rotor speeds ``[..., 4]`` producing a wrench (clipped to the rotor limits)."""
        mu = jnp.concatenate([collective[..., None], torque], -1)
        f = jnp.clip(matvec(np.linalg.inv(self.G1), mu), 0.0, _col(self.max_rotor_thrust))
        return jnp.sqrt(f / self.k_f)

    def motor(self, speed: Array, command: Array, dt: float) -> Array:
        """First-order motor lag over ``dt`` (exact for a constant command)."""
        return command + (speed - command) * np.exp(-dt / self.motor_tau)

    def indi(
        self,
        quat: Array,  # [..., 4]
        omega: Array,  # [..., 3] body rates
        acc_meas: Array,  # [..., 3] world linear acceleration (previous substep)
        alpha_meas: Array,  # [..., 3] body angular acceleration (previous substep)
        thrusts_prev: Array,  # [..., 4] rotor thrusts applied in the previous substep
        acc_des: Array,  # [..., 3] world acceleration setpoint
        rates_des: Array,  # [..., 2] body rate setpoints p, q
    ) -> Array:
        """Rotor speed commands ``[..., 4]``."""
        R_z = rotate_e3(quat)
        collective_prev, torque_prev = self.wrench(thrusts_prev)
        gravity = -GRAVITY * E3
        acc_ext = acc_meas - gravity - R_z * collective_prev[..., None] / _col(self.mass)
        acc_cmd = acc_des - gravity - acc_ext
        norm = jnp.linalg.norm(acc_cmd, axis=-1)
        collective = jnp.clip(self.mass * norm, 0.0, self.max_thrust)
        z_des = acc_cmd / jnp.maximum(norm, 1e-6)[..., None]

        q_e = quat_mul(quat_conj(quat), quat_tilt(z_des))
        w, x, y, z = jnp.moveaxis(q_e, -1, 0)
        scale = 2.0 / jnp.sqrt(jnp.maximum(w**2 + z**2, 1e-12))
        zero = jnp.zeros_like(w)
        q_red = scale[..., None] * jnp.stack([w * x - y * z, w * y + x * z, zero], -1)
        q_yaw = scale[..., None] * jnp.stack([zero, zero, z], -1)
        sign = jnp.where(w >= 0, 1.0, -1.0)[..., None]
        rates_ref = jnp.concatenate([rates_des, jnp.zeros_like(rates_des[..., :1])], -1)
        alpha_cmd = (
            _col(self.k_att_xy) * q_red
            + _col(self.k_att_z) * sign * q_yaw
            + self.k_rate * (rates_ref - omega)
        )
        J = self.inertia
        torque = torque_prev + J * (alpha_cmd - alpha_meas)  # incremental roll and pitch
        yaw = J * alpha_cmd + jnp.cross(omega, J * omega)  # yaw is not incremental
        torque = torque.at[..., 2].set(yaw[..., 2])
        return self.speeds_for(collective, torque)
