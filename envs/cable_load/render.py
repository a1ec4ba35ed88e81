"""A small numpy 3-D renderer: wireframes through a fixed perspective camera to RGB frames."""

from __future__ import annotations

import itertools

import numpy as np

EYE = np.array([4.0, -5.0, 3.5])
TARGET = np.array([0.0, 0.0, 1.2])
FOCAL = 2.5  # image half-width / depth

LOAD_COLOR = (40, 80, 200)
GOAL_COLOR = (40, 170, 60)
CABLE_COLOR = (30, 30, 30)
DRONE_COLOR = (200, 50, 40)
FAILED_COLOR = (150, 150, 150)
GRID_COLOR = (215, 215, 215)


def _camera() -> np.ndarray:
    """Rows: camera right, up and forward axes in the world."""
    forward = TARGET - EYE
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.stack([right, np.cross(right, forward), forward])


class Canvas:
    def __init__(self, resolution: int):
        self.res = resolution
        self.frame = np.full((resolution, resolution, 3), 255, np.uint8)
        self.axes = _camera()

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points ``[..., 3]`` -> pixel coordinates ``[..., 2]`` (x right, y down)."""
        cam = (points - EYE) @ self.axes.T
        depth = np.maximum(cam[..., 2], 1e-3)
        half = self.res / 2
        return np.stack(
            [half + FOCAL * half * cam[..., 0] / depth, half - FOCAL * half * cam[..., 1] / depth],
            -1,
        )

    def line(self, a: np.ndarray, b: np.ndarray, color, width: int = 2) -> None:
        pa, pb = self.project(a), self.project(b)
        if not np.all(np.isfinite([pa, pb])):
            return
        count = int(np.clip(np.abs(pb - pa).max(), 1, 4 * self.res)) + 1
        pts = pa + np.linspace(0.0, 1.0, count)[:, None] * (pb - pa)
        self.dots(pts, color, width)

    def dots(self, pixels: np.ndarray, color, width: int) -> None:
        offsets = np.arange(width) - width // 2
        for dx, dy in itertools.product(offsets, offsets):
            x = np.round(pixels[:, 0]).astype(int) + dx
            y = np.round(pixels[:, 1]).astype(int) + dy
            keep = (x >= 0) & (x < self.res) & (y >= 0) & (y < self.res)
            self.frame[y[keep], x[keep]] = color

    def disc(self, centre: np.ndarray, radius_px: float, color) -> None:
        c = self.project(centre)
        if not np.all(np.isfinite(c)):
            return
        r = int(np.ceil(radius_px))
        dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
        inside = dx**2 + dy**2 <= radius_px**2
        self.dots(np.stack([c[0] + dx[inside], c[1] + dy[inside]], -1), color, 1)

    def box(self, centre: np.ndarray, R: np.ndarray, size: np.ndarray, color, width: int) -> None:
        corners = np.array(list(itertools.product([-0.5, 0.5], repeat=3))) * size
        world = centre + corners @ R.T
        for i, j in itertools.combinations(range(8), 2):
            if np.sum(corners[i] != corners[j]) == 1:  # an edge
                self.line(world[i], world[j], color, width)


def render_scene(
    *,
    load_pos: np.ndarray,  # [3] centre of mass
    load_R: np.ndarray,  # [3, 3]
    goal_pos: np.ndarray,
    goal_R: np.ndarray,
    box_size: np.ndarray,  # [3]
    box_offset: np.ndarray,  # [3] box centre from the centre of mass, load frame
    anchors: np.ndarray,  # [N, 3] cable ends on the load (world)
    drone_pos: np.ndarray,  # [N, 3]
    drone_R: np.ndarray,  # [N, 3, 3]
    drone_anchors: np.ndarray,  # [N, 3] cable ends on the drones (world)
    arm: float,
    attached: np.ndarray,  # [N] bool
    resolution: int = 400,
) -> np.ndarray:
    """Ground grid, goal pose (green), load (blue), cables and quadrotors, as ``[H, W, 3]`` uint8."""
    canvas = Canvas(resolution)
    for v in np.arange(-2.0, 2.01, 0.5):
        canvas.line(np.array([v, -2.0, 0.0]), np.array([v, 2.0, 0.0]), GRID_COLOR, 1)
        canvas.line(np.array([-2.0, v, 0.0]), np.array([2.0, v, 0.0]), GRID_COLOR, 1)
    canvas.box(goal_pos + goal_R @ box_offset, goal_R, box_size, GOAL_COLOR, 1)
    canvas.box(load_pos + load_R @ box_offset, load_R, box_size, LOAD_COLOR, 3)
    rotor = np.array([[1, 1, 0], [1, -1, 0], [-1, -1, 0], [-1, 1, 0]]) * arm
    for i in range(len(drone_pos)):
        color = DRONE_COLOR if attached[i] else FAILED_COLOR
        if attached[i]:
            canvas.line(anchors[i], drone_anchors[i], CABLE_COLOR, 1)
        tips = drone_pos[i] + rotor @ drone_R[i].T
        canvas.line(tips[0], tips[2], color, 3)
        canvas.line(tips[1], tips[3], color, 3)
        for tip in tips:
            canvas.disc(tip, 3, color)
    return canvas.frame
