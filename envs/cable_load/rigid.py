"""Rigid bodies joined by cables: a load (body 0) and N quadrotors (bodies 1..N), in pure JAX.

Each cable ``i`` joins the load point ``rho_i`` (load frame, from the load's centre of
mass) to the drone point ``r`` (drone frame). With ``d_i = (p_L + R_L rho_i) - (p_i + R_i r)``
and ``n_i = d_i / |d_i|``, the cable pulls the drone by ``+t_i n_i`` and the load by
``-t_i n_i``. The tensions ``t`` come from the Baumgarte-stabilised length constraint

    n_i . dd_i + (|d'_i|^2 - (n_i . d'_i)^2) / |d_i| + 2 k_d n_i . d'_i + k_p (|d_i| - l_i) = 0,

which is affine in ``t``: ``n . dd = b - M t`` with ``M`` symmetric positive definite, so each
substep is one ``N x N`` linear solve. Cables are massless rods (bilateral, the reference's
default); ``unilateral`` cables may go slack (``t >= 0``, enforced by dropping negative
tensions and solving again, ``N`` passes). Integration is semi-implicit Euler: velocities
first, then positions and the exact rotation for the new angular velocity.

Quaternions are ``(w, x, y, z)`` and rotate body to world; angular velocities are in the
body frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.core import Array

GRAVITY = 9.8066
E3 = np.array([0.0, 0.0, 1.0])


# --- quaternions ------------------------------------------------------------------------


def quat_mul(a: Array, b: Array) -> Array:
    """Hamilton product ``a ⊗ b`` of ``[..., 4]`` quaternions."""
    aw, ax, ay, az = jnp.moveaxis(a, -1, 0)
    bw, bx, by, bz = jnp.moveaxis(b, -1, 0)
    return jnp.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def quat_conj(q: Array) -> Array:
    return q * jnp.array([1.0, -1.0, -1.0, -1.0])


def quat_to_matrix(q: Array) -> Array:
    """``[..., 4]`` unit quaternions -> ``[..., 3, 3]`` rotation matrices."""
    w, x, y, z = jnp.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return jnp.stack([jnp.stack(r, -1) for r in rows], -2)


def quat_from_axis_angle(axis: Array, angle: Array) -> Array:
    """Rotation by ``angle [...]`` about the unit ``axis [..., 3]``."""
    half = 0.5 * angle[..., None]
    return jnp.concatenate([jnp.cos(half), jnp.sin(half) * axis], -1)


def quat_from_euler(roll: Array, pitch: Array, yaw: Array) -> Array:
    """Intrinsic z-y'-x'' (yaw, then pitch, then roll) Euler angles -> quaternion."""
    ex, ey, ez = (
        jnp.broadcast_to(jnp.asarray(v, float), jnp.shape(roll) + (3,)) for v in np.eye(3)
    )
    return quat_mul(
        quat_from_axis_angle(ez, yaw),
        quat_mul(quat_from_axis_angle(ey, pitch), quat_from_axis_angle(ex, roll)),
    )


def quat_tilt(z: Array) -> Array:
    """The shortest rotation taking ``e3`` to the unit vector ``z [..., 3]`` (no yaw); for
    ``z = -e3``, where every horizontal axis is shortest, half a turn about x."""
    w = 1.0 + z[..., 2:]
    q = jnp.concatenate([w, -z[..., 1:2], z[..., 0:1], jnp.zeros_like(w)], -1)
    q = jnp.where(w > 1e-6, q, jnp.array([0.0, 1.0, 0.0, 0.0], q.dtype))
    return q / jnp.linalg.norm(q, axis=-1, keepdims=True)


def quat_angle(a: Array, b: Array) -> Array:
    """Angle (rad) of the rotation between orientations ``a`` and ``b``."""
    e = quat_mul(quat_conj(a), b)
    return 2.0 * jnp.arctan2(jnp.linalg.norm(e[..., 1:], axis=-1), jnp.abs(e[..., 0]))


def rotate_e3(quat: Array) -> Array:
    """The body z axis in the world, ``R e3``, for ``[..., 4]`` quaternions."""
    w, x, y, z = jnp.moveaxis(quat, -1, 0)
    return jnp.stack([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)], -1)


def quat_integrate(q: Array, omega: Array, dt: float) -> Array:
    """``q ⊗ exp(omega dt / 2)``: the rotation after ``dt`` at body rate ``omega [..., 3]``."""
    angle = jnp.linalg.norm(omega, axis=-1, keepdims=True) * dt
    # sin(angle / 2) / |omega| written with sinc so that omega = 0 is smooth.
    dq = jnp.concatenate([jnp.cos(angle / 2), 0.5 * dt * jnp.sinc(angle / (2 * np.pi)) * omega], -1)
    q = quat_mul(q, dq)
    return q / jnp.linalg.norm(q, axis=-1, keepdims=True)


def matvec(A: Array, v: Array) -> Array:
    """``A [..., m, k] @ v [..., k]`` as a broadcast sum.

    The small products of this package are written this way rather than as ``dot``: XLA's
    CPU dot kernels sum in another order once batched, which would make vmapped and single
    trajectories differ in the last bit.
    """
    return jnp.sum(A * v[..., None, :], -1)


def matmul(A: Array, B: Array) -> Array:
    """``A [..., m, k] @ B [..., k, n]`` as a broadcast sum (see ``matvec``)."""
    return jnp.sum(A[..., :, :, None] * B[..., None, :, :], -2)


def rotate(R: Array, v: Array) -> Array:
    """``R [..., 3, 3] @ v [..., 3]``."""
    return matvec(R, v)


def unrotate(R: Array, v: Array) -> Array:
    """``R^T v``: a world vector in the body frame."""
    return matvec(jnp.swapaxes(R, -1, -2), v)


# --- bodies and cables --------------------------------------------------------------------


@struct.dataclass
class Bodies:
    """Kinematic state of the load (index 0) and the drones (1..N)."""

    pos: Array  # [B, 3] world position of each centre of mass
    quat: Array  # [B, 4] orientation, body to world
    vel: Array  # [B, 3] world linear velocity
    omega: Array  # [B, 3] body-frame angular velocity


@struct.dataclass
class Inertia:
    """Mass properties; a zero inverse mass and inertia pins a body in space."""

    inertia: Array  # [B, 3] principal moments (diagonal inertia)
    inv_mass: Array  # [B]
    inv_inertia: Array  # [B, 3]

    @classmethod
    def of(cls, mass: Array, inertia: Array) -> Inertia:
        return cls(inertia=inertia, inv_mass=1.0 / mass, inv_inertia=1.0 / inertia)


@dataclass(frozen=True, eq=False)
class Cables:
    """Cable geometry and constraint settings (static)."""

    load_anchor: np.ndarray  # [N, 3] rho_i, load frame
    drone_anchor: np.ndarray  # [3] r, drone frame
    length: np.ndarray  # [N]
    unilateral: bool = False
    # Baumgarte gains: k_p = 1 / dt^2 and 2 k_d = 1 / dt at 300 Hz make a semi-implicit Euler
    # step remove the length error and its rate in one substep (deadbeat), which keeps the
    # O(dt^2) integration error of fast, strongly pulled cables well below a millimetre.
    k_p: float = 90000.0  # 1/s^2
    k_d: float = 150.0  # 1/s

    def geometry(self, b: Bodies) -> tuple[Array, Array, Array]:
        """World anchor points on the load ``[N, 3]`` and drones ``[N, 3]``, and ``d [N, 3]``."""
        R = quat_to_matrix(b.quat)
        on_load = b.pos[0] + rotate(R[0], self.load_anchor)
        on_drone = b.pos[1:] + rotate(R[1:], self.drone_anchor)
        return on_load, on_drone, on_load - on_drone


def _point_acc(R: Array, acc: Array, alpha: Array, omega: Array, x: Array) -> Array:
    """World acceleration of the body-fixed point ``x`` (body frame)."""
    return acc + rotate(R, jnp.cross(alpha, x) + jnp.cross(omega, jnp.cross(omega, x)))


def _point_vel(R: Array, vel: Array, omega: Array, x: Array) -> Array:
    return vel + rotate(R, jnp.cross(omega, x))


def accelerations(
    b: Bodies, inertia: Inertia, cables: Cables, force: Array, torque: Array, attached: Array
) -> tuple[Array, Array, Array]:
    """Linear ``[B, 3]`` (world) and angular ``[B, 3]`` (body) accelerations, and tensions ``[N]``.

    ``force [B, 3]`` (world, gravity excluded) and ``torque [B, 3]`` (body) are the applied
    loads; ``attached [N]`` switches cables off (a released cable carries no tension).
    """
    R = quat_to_matrix(b.quat)  # [B, 3, 3]
    movable = inertia.inv_mass > 0
    acc = force * inertia.inv_mass[:, None] - GRAVITY * E3 * movable[:, None]
    gyro = jnp.cross(b.omega, inertia.inertia * b.omega)
    alpha = inertia.inv_inertia * (torque - gyro)

    rho, r = cables.load_anchor, cables.drone_anchor
    RL, Rd, wL, wd = R[0], R[1:], b.omega[0], b.omega[1:]
    _, _, d = cables.geometry(b)  # [N, 3]
    d_dot = _point_vel(RL, b.vel[0], wL, rho) - _point_vel(Rd, b.vel[1:], wd, r)
    dist = jnp.linalg.norm(d, axis=-1)
    n = d / dist[:, None]
    dd_free = _point_acc(RL, acc[0], alpha[0], wL, rho) - _point_acc(Rd, acc[1:], alpha[1:], wd, r)
    n_dot = jnp.sum(n * d_dot, -1)
    b_free = jnp.sum(n * dd_free, -1)
    target = (
        -(jnp.sum(d_dot**2, -1) - n_dot**2) / dist
        - 2 * cables.k_d * n_dot
        - cables.k_p * (dist - cables.length)
    )

    u = unrotate(RL, n)  # [N, 3] cable directions in the load frame
    k = jnp.cross(rho, u)  # [N, 3]
    h = jnp.cross(r, unrotate(Rd, n))  # [N, 3]
    M = (
        inertia.inv_mass[0] * matmul(n, n.T)
        + matmul(k * inertia.inv_inertia[0], k.T)
        + jnp.diag(inertia.inv_mass[1:] + jnp.sum(h * inertia.inv_inertia[1:] * h, -1))
    )
    rhs = b_free - target

    def solve(active):
        both = active[:, None] & active[None, :]
        Ma = jnp.where(both, M, jnp.eye(len(rho)))
        return jnp.linalg.solve(Ma, jnp.where(active, rhs, 0.0))

    active = attached
    if cables.unilateral:
        active = attached & (dist >= cables.length - 1e-3)
        for _ in range(len(rho)):
            active = active & (solve(active) > 0)
    t = solve(active)  # [N]

    pull = t[:, None] * n  # [N, 3] force on each drone; the load gets minus their sum
    acc = acc.at[0].add(-inertia.inv_mass[0] * pull.sum(0))
    acc = acc.at[1:].add(inertia.inv_mass[1:, None] * pull)
    alpha = alpha.at[0].add(-inertia.inv_inertia[0] * jnp.sum(t[:, None] * k, 0))
    alpha = alpha.at[1:].add(inertia.inv_inertia[1:] * t[:, None] * h)
    return acc, alpha, t


def integrate(b: Bodies, acc: Array, alpha: Array, dt: float) -> Bodies:
    """Semi-implicit Euler: new velocities, then positions and rotations with them."""
    vel = b.vel + acc * dt
    omega = b.omega + alpha * dt
    return Bodies(
        pos=b.pos + vel * dt,
        quat=quat_integrate(b.quat, omega, dt),
        vel=vel,
        omega=omega,
    )


def step(
    b: Bodies,
    inertia: Inertia,
    cables: Cables,
    force: Array,
    torque: Array,
    attached: Array,
    dt: float,
) -> tuple[Bodies, Array, Array, Array]:
    """One physics substep -> (bodies, linear acc ``[B, 3]``, angular acc ``[B, 3]``, tensions ``[N]``)."""
    acc, alpha, t = accelerations(b, inertia, cables, force, torque, attached)
    return integrate(b, acc, alpha, dt), acc, alpha, t


def energy(b: Bodies, inertia: Inertia) -> Array:
    """Kinetic plus gravitational energy of the movable bodies (J)."""
    movable = inertia.inv_mass > 0
    mass = jnp.where(movable, 1.0 / jnp.where(movable, inertia.inv_mass, 1.0), 0.0)
    kinetic = 0.5 * mass * jnp.sum(b.vel**2, -1) + 0.5 * jnp.sum(
        jnp.where(movable[:, None], inertia.inertia, 0.0) * b.omega**2, -1
    )
    return jnp.sum(kinetic + mass * GRAVITY * b.pos[:, 2])
