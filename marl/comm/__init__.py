"""Communication channels by name: ``CHANNELS``, ``register_channel``, ``make_channel``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import flax.linen as nn

from envs.core import AgentSpaces
from marl.comm.base import NoChannel
from marl.comm.graph import GraphConfig, make_graph
from marl.comm.messenger import MessengerConfig, make_messenger
from marl.comm.vq import VQConfig, make_vq
from marl.config import CommConfig


@dataclass(frozen=True)
class ChannelEntry:
    config: type  # the channel's config dataclass (its ``comm`` schema), a CommConfig
    make: Callable[[CommConfig, AgentSpaces], nn.Module]


CHANNELS: dict[str, ChannelEntry] = {
    "none": ChannelEntry(CommConfig, lambda cfg, env: NoChannel()),
    "messenger": ChannelEntry(MessengerConfig, make_messenger),
    "graph": ChannelEntry(GraphConfig, make_graph),
    "vq": ChannelEntry(VQConfig, make_vq),
}


def register_channel(name: str, config: type, make: Callable[..., nn.Module]) -> None:
    """Add a channel: ``comm=<name>`` then builds ``make(cfg, env)`` from a ``config``."""
    if name in CHANNELS:
        raise ValueError(f"channel {name!r} is already registered")
    CHANNELS[name] = ChannelEntry(config, make)


def make_channel(cfg: CommConfig, env: AgentSpaces) -> nn.Module:
    if cfg.name not in CHANNELS:
        raise ValueError(f"unknown comm {cfg.name!r}; comm options are {sorted(CHANNELS)}")
    return CHANNELS[cfg.name].make(cfg, env)


__all__ = ["CHANNELS", "ChannelEntry", "NoChannel", "make_channel", "register_channel"]
