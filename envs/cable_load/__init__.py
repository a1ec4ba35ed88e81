"""N quadrotors carrying a rigid load by cables: dynamics, INDI controller, task, render."""

from envs.cable_load.hover import CableLoadHover
from envs.cable_load.track import CableLoadTrack

__all__ = ["CableLoadHover", "CableLoadTrack"]
