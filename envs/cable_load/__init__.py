"""N quadrotors carrying a rigid load by cables: dynamics, INDI controller, task, render."""

from envs.cable_load.hover import CableLoadHover

__all__ = ["CableLoadHover"]
