"""A complete method in 60 lines (the README's "Adding a method"): agents broadcast noisy
messages. The noise drawn while acting is stored (``extras``) and replayed in ``evaluate``;
a running message scale is method state; the speaker has its own parameter group."""

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp

from marl.config import GroupConfig, PolicyConfig
from marl.policies import (
    Acted,
    ActionDist,
    ActorCritic,
    Evaluated,
    groups_by_module,
    register_policy,
)


@dataclass
class NoisyConfig(PolicyConfig):
    name: str = "noisy"
    msg_dim: int = 4
    noise: float = 0.5
    speaker_lr: float = 1e-3


class NoisyNet(nn.Module):
    msg_dim: int
    action_dim: int

    @nn.compact
    def __call__(self, obs, noise):  # obs [..., N, D], noise [..., N, M]
        msg = nn.Dense(self.msg_dim, name="speaker")(obs) + noise
        heard = (msg.sum(-2, keepdims=True) - msg) / (msg.shape[-2] - 1)  # the others' mean
        scale = self.variable("method_state", "msg_scale", jnp.zeros, ())
        if self.is_mutable_collection("method_state"):
            scale.value = 0.99 * scale.value + 0.01 * jnp.abs(msg).mean()
        logits = nn.Dense(self.action_dim, name="actor")(jnp.concatenate([obs, heard], -1))
        return logits, nn.Dense(1, name="critic")(obs)[..., 0]


class NoisyPolicy(ActorCritic):
    def __init__(self, cfg: NoisyConfig, env, channel, num_updates: int):
        self.cfg, self.num_updates = cfg, num_updates
        self.net = NoisyNet(cfg.msg_dim, env.action_dim)

    def noise(self, key, obs):
        return self.cfg.noise * jax.random.normal(key, (*obs.obs.shape[:-1], self.cfg.msg_dim))

    def initial_carry(self, batch_shape):
        return jnp.zeros(batch_shape)

    def init(self, key, obs):
        variables = self.net.init(key, obs.obs, self.noise(key, obs))
        return {"params": variables["params"]}, {"method_state": variables["method_state"]}

    def act(self, params, method_state, carry, obs, key, ctx, deterministic=False):
        k_noise, k_act = jax.random.split(key)
        noise = self.noise(k_noise, obs)
        logits, value = self.net.apply({**params, **method_state}, obs.obs, noise)
        dist = ActionDist(logits, obs.action_mask, discrete=True)
        action = dist.mode() if deterministic else dist.sample(k_act)
        return Acted(carry, action, dist.log_prob(action), value, noise, {})

    def value(self, params, method_state, carry, obs, key, ctx):
        return self.net.apply({**params, **method_state}, obs.obs, self.noise(key, obs))[1]

    def evaluate(self, params, method_state, carry0, obs, action, extras, key, ctx):
        variables = {**params, **method_state}
        (logits, value), method_state = self.net.apply(
            variables, obs.obs, extras, mutable=["method_state"]
        )
        dist = ActionDist(logits, obs.action_mask, discrete=True)
        return Evaluated(dist.log_prob(action), dist.entropy(), value, method_state, {})

    def param_groups(self, params):
        return groups_by_module(params, {"speaker": "speaker"})

    def group_defaults(self):
        return {"speaker": GroupConfig(lr=self.cfg.speaker_lr)}


register_policy("noisy", NoisyConfig, NoisyPolicy)
