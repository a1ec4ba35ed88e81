"""IC3Net's grid Predator-Prey and Predator-Capture-Prey in JAX."""

from envs.predator_prey.grid import GridState, PredatorPrey

__all__ = ["GridState", "PredatorPrey"]
