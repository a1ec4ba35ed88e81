"""Network building blocks: MLP torsos, a GRU that resets at episode starts, initialisers."""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from marl.config import Activation

ACTIVATIONS = {
    Activation.tanh: nn.tanh,
    Activation.relu: nn.relu,
    Activation.gelu: nn.gelu,
    Activation.elu: nn.elu,
}


def dense(features: int, scale: float = np.sqrt(2)) -> nn.Dense:
    """Orthogonal-initialised dense layer with zero bias (PPO's usual initialisation)."""
    return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale))


class MLP(nn.Module):
    hidden: Sequence[int]
    activation: Activation = Activation.tanh

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[Activation(self.activation)]
        for size in self.hidden:
            x = act(dense(size)(x))
        return x


class ResetGRU(nn.Module):
    """One GRU step that restarts from zeros where ``reset`` is set (episode start)."""

    size: int

    @nn.compact
    def __call__(self, carry: jax.Array, x: jax.Array, reset: jax.Array):
        carry = jnp.where(reset[..., None], 0.0, carry)
        return nn.GRUCell(self.size)(carry, x)


class Torso(nn.Module):
    """MLP, then optionally a GRU, then optionally a linear head:
    ``(carry, x, reset) -> (carry, out)``; ``out_dim=0`` returns the features themselves."""

    hidden: Sequence[int]
    out_dim: int = 0
    out_scale: float = 1.0
    activation: Activation = Activation.tanh
    gru_size: int = 0  # 0: feed-forward

    @nn.compact
    def __call__(self, carry: jax.Array, x: jax.Array, reset: jax.Array):
        h = MLP(self.hidden, self.activation)(x)
        if self.gru_size:
            carry, h = ResetGRU(self.gru_size)(carry, h, reset)
        return carry, dense(self.out_dim, self.out_scale)(h) if self.out_dim else h
