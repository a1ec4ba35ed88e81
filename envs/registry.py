"""Environments by name: ``make("mpe/spread", num_agents=5)`` and ``list_envs()``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from envs.cable_load import CableLoadHover, CableLoadTrack
from envs.core import MultiAgentEnv
from envs.games import ContextualPD
from envs.mpe import Reference, SpeakerListener, Spread, Tag
from envs.predator_prey import PredatorPrey
from envs.wrappers.from_jaxmarl import smax

_REGISTRY: dict[str, Callable[..., MultiAgentEnv]] = {
    "mpe/spread": Spread,
    "mpe/speaker_listener": SpeakerListener,
    "mpe/reference": Reference,
    "mpe/tag": Tag,
    "cable_load/hover": CableLoadHover,
    # The reference's 4-MAV team randomises the load mass; 5 MAVs fly closer together.
    "cable_load/hover4": partial(CableLoadHover, num_agents=4, load_mass_range=(1.0, 1.8)),
    "cable_load/hover5": partial(CableLoadHover, num_agents=5, min_drone_distance=0.6),
    # The load follows a moving reference (figure-8, circle or steps).
    "cable_load/track": CableLoadTrack,
    "predator_prey/pp": PredatorPrey,
    # Predator-Capture-Prey: 2 seeing predators and 1 blind capture agent.
    "predator_prey/pcp": partial(PredatorPrey, num_predators=2, num_capture=1),
    # AI Mother Tongue's one-step contextual Prisoner's Dilemma on digit images.
    "games/contextual_pd": ContextualPD,
    # JaxMARL's SMAX against its heuristic enemy (needs the bench extra).
    "smax/3m": partial(smax, map_name="3m"),
    "smax/5m_vs_6m": partial(smax, map_name="5m_vs_6m"),
}


def register(name: str, factory: Callable[..., MultiAgentEnv]) -> None:
    """Add an environment; its factory's keyword arguments become ``make``'s options."""
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    _REGISTRY[name] = factory


def list_envs() -> list[str]:
    return sorted(_REGISTRY)


def env_options(name: str) -> dict[str, object]:
    """The keyword options of environment ``name`` with their defaults (a class whose
    ``__init__`` passes ``**options`` on also has its base classes' options, less those it
    names in ``ignored_options``)."""
    factory = _factory(name)
    chain = [factory]
    if inspect.isclass(factory):
        chain = [c.__init__ for c in factory.__mro__ if "__init__" in vars(c)]
    options = {}
    for fn in chain:
        params = inspect.signature(fn).parameters.values()
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                options.setdefault(p.name, p.default)
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    for ignored in getattr(factory, "ignored_options", ()):
        options.pop(ignored)
    return options


def make(name: str, **kwargs) -> MultiAgentEnv:
    """Build a registered environment; unknown names or options raise ``ValueError``."""
    options = env_options(name)
    unknown = sorted(set(kwargs) - set(options))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for environment {name!r}; "
            f"options are {', '.join(f'{k}={v!r}' for k, v in options.items())}"
        )
    return _factory(name)(**kwargs)


def _factory(name: str) -> Callable[..., MultiAgentEnv]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown environment {name!r}; registered: {', '.join(list_envs())}")
    return _REGISTRY[name]
