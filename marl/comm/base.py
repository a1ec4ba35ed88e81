"""The communication slot of the IPPO/MAPPO networks: encoder -> channel -> head.

A channel is a flax module called on every agent's encoder features at once:

    h_out, extras, aux = channel(h, obs, ctx, extras)

- ``h`` ``[..., N, H]``: each agent's features; ``h_out`` ``[..., N, H']`` goes to each
  agent's action head (the receiver's own features plus what it received).
- ``extras``: ``None`` while acting; the channel draws what is random
  (``self.make_rng("comm")``) and returns it, the trainer stores it with the step, and at
  update time gives it back so the same messages are replayed (the PPO ratio stays exact).
- ``aux``: entries named ``loss/...`` join the loss (e.g. a commitment loss); the rest are
  metrics of any shape.
- State the optimiser never sees lives in the ``"method_state"`` collection
  (``self.variable("method_state", ...)``): read while acting, updated in ``evaluate``.
- ``statistics(episodes)``, an optional plain method, is the evaluator's hook (symbol
  usage, ...): the policy hands it the recorded evaluation steps.

``NoChannel`` passes the features through: IPPO and MAPPO as they are. ``heard_elsewhere`` is
the evaluation-time intervention of the channels with a ``heard`` option (``sent |
shuffled``): every environment hears the messages sent in another episode.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

HEARD = ("sent", "shuffled")  # a channel's ``heard`` option


class NoChannel(nn.Module):
    """No communication: every head sees its own agent's features only."""

    @nn.compact
    def __call__(self, h: jax.Array, obs, ctx, extras=None) -> tuple[jax.Array, Any, dict]:
        return h, {}, {}


def check_heard(heard: str) -> None:
    if heard not in HEARD:
        raise ValueError(f"comm.heard must be one of {HEARD}, got {heard!r}")


def heard_elsewhere(message: jax.Array, heard: str, acting: bool) -> jax.Array:
    """``message [..., E, N, M]`` as heard: as sent, or (``shuffled``) environment e hears what
    was sent in environment e + 1, so the messages keep their distribution and lose what they
    say about this episode; a drop in the team's score measures how much it relies on them.
    Training refuses it (the update's minibatch is not the rollout's batch: the PPO ratio
    would not start at 1)."""
    if heard == "sent":
        return message
    if not acting:
        raise ValueError(
            "comm.heard=shuffled is an intervention for evaluation; train with comm.heard=sent"
        )
    if message.ndim < 3 or message.shape[-3] < 2:
        raise ValueError(
            f"comm.heard=shuffled needs a batch of at least 2 environments, got messages of "
            f"shape {message.shape}"
        )
    return jnp.roll(message, -1, axis=-3)  # [e] <- [e + 1]
