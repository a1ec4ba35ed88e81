from envs.games.contextual_pd import ContextualPD

__all__ = ["ContextualPD"]
