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

``NoChannel`` passes the features through: IPPO and MAPPO as they are.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax


class NoChannel(nn.Module):
    """No communication: every head sees its own agent's features only."""

    @nn.compact
    def __call__(self, h: jax.Array, obs, ctx, extras=None) -> tuple[jax.Array, Any, dict]:
        return h, {}, {}
