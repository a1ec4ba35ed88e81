"""HAMMER's local agents (Gupta et al., 2021) around a central messenger (``comm=messenger``).

Each local agent acts on ``[own observation ‖ its message]`` through its own MLP (or one
shared MLP) and never hears the other agents; its critic hears the same input with the
message stop-gradient, so the value loss never reaches the messenger. With ``comm=none`` the
agents get no message: independent learners (IL) with the same networks. With
``comm.mode=rl`` the messenger is a second learner, the team-level role ``messenger``.

Parameter groups: ``actor`` (local actors and the action log-std), ``critic`` (local
critics), ``comm`` (the messenger, with its own critic in ``rl`` mode).

Choices where the reference code differs (``../shared/research/hammer.md``): the shared
encoder takes one optimiser step per minibatch on the sum of all agents' actor losses (the
reference steps it once per agent); no saliency backward pass while acting; agents learn from
the rewards the environment gives them (``mpe/spread`` mixes local and team reward by
``local_ratio``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from envs.core import AgentSpaces
from marl.comm import NoChannel
from marl.comm.messenger import Messenger, MessengerMode
from marl.config import WIDTHS, Activation, PolicyConfig
from marl.policies.base import (
    Acted,
    ActionDist,
    ActorCritic,
    Context,
    Evaluated,
    Observation,
    Role,
    groups_by_module,
)
from marl.policies.mlp import PerAgent


@dataclass
class HammerConfig(PolicyConfig):
    name: str = "hammer"
    actor_hidden: list[int] = field(default_factory=lambda: [64, 64], metadata=WIDTHS)
    critic_hidden: list[int] = field(default_factory=lambda: [64, 32], metadata=WIDTHS)
    activation: Activation = Activation.relu
    share_parameters: bool = False  # the reference gives every local agent its own networks
    agent_id: bool = False  # append a one-hot agent id (useful with shared parameters)
    critic_hears_message: bool = True  # the reference's critic input: [obs ‖ stop-grad message]
    log_std_init: float = float(np.log(0.5))  # continuous actions (the reference: std 0.5)


class HammerNet(nn.Module):
    cfg: HammerConfig
    messenger: nn.Module  # Messenger, or NoChannel for no messages
    num_agents: int
    action_dim: int
    discrete: bool

    @nn.compact
    def __call__(self, obs: Observation, ctx, extras=None, deterministic=False, previous=None):
        """``previous [..., N, A]``: the agents' previous actions, if the messenger sees them."""
        c, n = self.cfg, self.num_agents
        x = obs.obs  # [..., N, D]
        if c.agent_id:
            x = jnp.concatenate([x, jnp.broadcast_to(jnp.eye(n), (*x.shape[:-1], n))], -1)
        if isinstance(self.messenger, Messenger):
            seen = x if previous is None else jnp.concatenate([x, previous], -1)
            message, extras, aux, learner = self.messenger.send(seen, ctx, extras, deterministic)
        else:
            message, extras, aux, learner = x[..., :0], {}, {}, None
        heard = jnp.concatenate([x, message], -1)  # [..., N, D + meslen]
        critic_in = jax.lax.stop_gradient(heard) if c.critic_hears_message else x
        zeros = jnp.zeros((*x.shape[:-1], 1))  # feed-forward torsos take an unused carry
        torso = {"activation": c.activation}
        actor = {"hidden": tuple(c.actor_hidden), "out_dim": self.action_dim, "out_scale": 0.01}
        critic = {"hidden": tuple(c.critic_hidden), "out_dim": 1}
        share = c.share_parameters
        out = PerAgent({**actor, **torso}, n, share, name="actor")(zeros, heard, obs.reset)[1]
        value = PerAgent({**critic, **torso}, n, share, name="critic")(zeros, critic_in, obs.reset)
        if not self.discrete:
            shape = (self.action_dim,) if share else (n, self.action_dim)
            self.param("log_std", nn.initializers.constant(c.log_std_init), shape)
        return out, value[1][..., 0], extras, aux, learner


class HammerPolicy(ActorCritic):
    """With ``comm.sees_actions`` the carry holds each agent's last action ``[..., N, A]``
    (zero at an episode's start) and the step stores what the messenger saw."""

    def __init__(self, cfg: HammerConfig, env: AgentSpaces, channel: nn.Module, num_updates):
        if not isinstance(channel, Messenger | NoChannel):
            raise ValueError("policy=hammer hears comm=messenger or comm=none")
        self.discrete, self.action_dim = env.discrete, env.action_dim
        self.learner = isinstance(channel, Messenger) and channel.cfg.mode == MessengerMode.rl
        self.sees_actions = isinstance(channel, Messenger) and channel.cfg.sees_actions
        if self.learner:
            self.roles = {"agents": Role(), "messenger": Role(units="team", reward="team")}
        self.statistics = getattr(channel, "statistics", None)
        self.net = HammerNet(cfg, channel, env.num_agents, env.action_dim, env.discrete)

    def init(self, key, obs):
        k_params, k_comm = jax.random.split(key)
        previous = self.initial_carry(obs.reset.shape) if self.sees_actions else None
        rngs = {"params": k_params, "comm": k_comm}
        variables = self.net.init(rngs, obs, Context.at(0, 1), None, False, previous)
        return {"params": variables["params"]}, {}

    def initial_carry(self, batch_shape):
        if self.sees_actions:
            return jnp.zeros((*batch_shape, self.net.num_agents, self.action_dim))
        return jnp.zeros((*batch_shape, 1))  # unused; Orbax saves no empty arrays

    def param_groups(self, params):
        return groups_by_module(params, {"critic": "critic", "messenger": "comm"}, "actor")

    def _forward(self, params, obs, key, ctx, extras=None, deterministic=False, previous=None):
        out, value, extras, aux, learner = self.net.apply(
            params, obs, ctx, extras, deterministic, previous, rngs={"comm": key}
        )
        log_std = None if self.discrete else params["params"]["log_std"]
        return ActionDist(out, obs.action_mask, self.discrete, log_std), value, extras, aux, learner

    def _roles(self, agents, learner, field):
        """One role's array, or ``{agents, messenger}`` with the rl messenger's."""
        return {"agents": agents, "messenger": getattr(learner, field)} if self.learner else agents

    def act(self, params, method_state, carry, obs, key, ctx, deterministic=False) -> Acted:
        k_comm, k_act = jax.random.split(key)
        previous = None
        if self.sees_actions:
            previous = jnp.where(obs.reset[..., None, None], 0.0, carry)
        dist, value, extras, aux, learner = self._forward(
            params, obs, k_comm, ctx, deterministic=deterministic, previous=previous
        )
        action = dist.mode() if deterministic else dist.sample(k_act)
        if self.sees_actions:
            extras = {"comm": extras, "previous": previous}
            carry = jax.nn.one_hot(action, self.action_dim) if self.discrete else action
        log_prob = self._roles(dist.log_prob(action), learner, "log_prob")
        return Acted(carry, action, log_prob, self._roles(value, learner, "value"), extras, aux)

    def value(self, params, method_state, carry, obs, key, ctx):
        previous = carry if self.sees_actions else None  # the action just taken
        _, value, _, _, learner = self._forward(params, obs, key, ctx, previous=previous)
        return self._roles(value, learner, "value")

    def evaluate(self, params, method_state, carry0, obs, action, extras, key, ctx) -> Evaluated:
        previous = None
        if self.sees_actions:
            extras, previous = extras["comm"], extras["previous"]
        dist, value, _, aux, learner = self._forward(params, obs, key, ctx, extras, False, previous)
        return Evaluated(
            self._roles(dist.log_prob(action), learner, "log_prob"),
            self._roles(dist.entropy(), learner, "entropy"),
            self._roles(value, learner, "value"),
            method_state,
            aux,
        )
