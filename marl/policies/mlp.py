"""IPPO and MAPPO actor-critics: per-agent MLP (optionally GRU) actor and critic, with the
communication slot between the actor's encoder and its head.

The actor is encoder -> channel -> head: the encoder (MLP, then a GRU if recurrent) runs
per agent, the channel (``comm=...``, ``marl.comm``) sees every agent's features at once,
and a head per agent (linear, or an MLP with ``head_hidden``) gives the action logits (or
Gaussian means). With ``comm=none`` it is the plain IPPO/MAPPO actor. IPPO's critic sees
the agent's own observation, MAPPO's the global state. With ``centralised_actor`` the actor
sees the global state too (with the agent id): one network maps the state to every agent's
action, a centralised policy. With parameter sharing one network serves all agents (plus an
agent-id one-hot, optionally); without it each agent has its own weights (``nn.vmap`` over
agents).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flax.linen as nn
import jax
import jax.numpy as jnp

from envs.core import AgentSpaces
from marl.config import WIDTHS, Activation, PolicyConfig
from marl.networks import Torso
from marl.policies.base import (
    Acted,
    ActionDist,
    ActorCritic,
    Context,
    Evaluated,
    Observation,
    groups_by_module,
)


@dataclass
class MLPConfig(PolicyConfig):
    name: str = "mappo"  # ippo: critic on the own observation; otherwise on the global state
    actor_hidden: list[int] = field(default_factory=lambda: [64, 64], metadata=WIDTHS)
    # hidden layers of the head, after the channel: what an agent hears can then interact
    # with its own features (with none, messages only shift the action logits)
    head_hidden: list[int] = field(default_factory=list, metadata=WIDTHS)
    critic_hidden: list[int] = field(default_factory=lambda: [64, 64], metadata=WIDTHS)
    activation: Activation = Activation.tanh
    share_parameters: bool = True  # one network for all agents
    agent_id: bool = True  # append a one-hot agent id to every agent's input
    recurrent: bool = False  # GRU after the MLP torso
    gru_size: int = field(default=64, metadata=WIDTHS)
    log_std_init: float = 0.0  # continuous actions: state-independent log-std
    # continuous actions: the log-std is not learned (stays at log_std_init, or at the
    # init_from run's), e.g. to fine-tune a converged policy's mean alone
    fixed_log_std: bool = False
    centralised_actor: bool = False  # the actor sees the global state, not the observation


class PerAgent(nn.Module):
    """A ``Torso`` applied to every agent: ``x [..., N, D]``, ``carry [..., N, H]``."""

    torso: dict
    num_agents: int
    shared: bool

    @nn.compact
    def __call__(self, carry, x, reset):
        reset = jnp.broadcast_to(reset[..., None], x.shape[:-1])
        if self.shared:
            return Torso(**self.torso)(carry, x, reset)
        per_agent = nn.vmap(
            Torso,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=(-2, -2, -1),
            out_axes=-2,
            axis_size=self.num_agents,
        )
        return per_agent(**self.torso)(carry, x, reset)


class ActorCriticNet(nn.Module):
    cfg: MLPConfig
    channel: nn.Module
    num_agents: int
    action_dim: int
    discrete: bool
    centralised: bool

    def setup(self):
        c = self.cfg
        gru = c.gru_size if c.recurrent else 0
        share = c.share_parameters
        torso = {"activation": c.activation, "gru_size": gru}
        self.encoder = PerAgent({"hidden": tuple(c.actor_hidden), **torso}, self.num_agents, share)
        head = {"hidden": tuple(c.head_hidden), "out_dim": self.action_dim, "out_scale": 0.01}
        self.head = PerAgent({**head, "activation": c.activation}, self.num_agents, share)
        # A shared centralised critic sees one global state for all agents: its first layer
        # runs once, and agent ids enter as a learned vector per agent (MLP.agent_ids).
        self.fused_ids = self.centralised and share and c.agent_id and len(c.critic_hidden) > 0
        ids = self.num_agents if self.fused_ids else 0
        critic = {"hidden": tuple(c.critic_hidden), "out_dim": 1, "agent_ids": ids, **torso}
        self.critic = PerAgent(critic, self.num_agents, share)
        if not self.discrete:
            shape = (self.action_dim,) if share else (self.num_agents, self.action_dim)
            self.log_std = self.param("log_std", nn.initializers.constant(c.log_std_init), shape)

    def _with_id(self, x):
        if not self.cfg.agent_id:
            return x
        ids = jnp.broadcast_to(jnp.eye(self.num_agents), (*x.shape[:-1], self.num_agents))
        return jnp.concatenate([x, ids], -1)

    def critic_value(self, carry, obs: Observation):
        """``[..., N]`` values. A shared centralised critic runs once on the global state:
        broadcast to all agents, or split per agent after its first layer (agent ids)."""
        n = self.num_agents
        if not self.centralised:
            carry, v = self.critic(carry, self._with_id(obs.obs), obs.reset)
            return carry, v[..., 0]
        state = obs.state[..., None, :]  # [..., 1, state_dim]
        if self.fused_ids:
            carry, v = self.critic(carry, state, obs.reset)
            return carry, v[..., 0]
        if self.cfg.share_parameters and not self.cfg.agent_id:
            carry, v = self.critic(carry[..., :1, :], state, obs.reset)
            return jnp.broadcast_to(
                carry, (*carry.shape[:-2], n, carry.shape[-1])
            ), jnp.broadcast_to(v[..., 0], (*v.shape[:-2], n))
        x = jnp.broadcast_to(state, (*state.shape[:-2], n, state.shape[-1]))
        carry, v = self.critic(carry, self._with_id(x), obs.reset)
        return carry, v[..., 0]

    def __call__(self, carry, obs: Observation, ctx: Context, extras=None):
        actor_carry, critic_carry = carry
        x = obs.obs  # [..., N, obs_dim]
        if self.cfg.centralised_actor:  # [..., N, state_dim]
            x = jnp.broadcast_to(obs.state[..., None, :], (*x.shape[:-1], obs.state.shape[-1]))
        actor_carry, h = self.encoder(actor_carry, self._with_id(x), obs.reset)
        h, extras, aux = self.channel(h, obs, ctx, extras)
        _, out = self.head(actor_carry, h, obs.reset)
        critic_carry, value = self.critic_value(critic_carry, obs)
        return (actor_carry, critic_carry), out, value, extras, aux


class MLPActorCritic(ActorCritic):
    def __init__(self, cfg: MLPConfig, env: AgentSpaces, channel: nn.Module, num_updates: int):
        if cfg.centralised_actor and cfg.share_parameters and not cfg.agent_id:
            raise ValueError(
                "policy.centralised_actor with shared parameters needs policy.agent_id=true "
                "(otherwise every agent gets the same action)"
            )
        self.cfg = cfg
        self.num_agents = env.num_agents
        self.discrete = env.discrete
        self.recurrent = cfg.recurrent
        self.statistics = getattr(channel, "statistics", None)
        self.net = ActorCriticNet(
            cfg, channel, env.num_agents, env.action_dim, env.discrete, cfg.name != "ippo"
        )

    def initial_carry(self, batch_shape):
        size = self.cfg.gru_size if self.recurrent else 1
        zeros = jnp.zeros((*batch_shape, self.num_agents, size))
        return zeros, zeros

    def init(self, key, obs: Observation):
        k_params, k_comm = jax.random.split(key)
        ctx = Context.at(0, 1)
        carry = self.initial_carry(obs.reset.shape)
        variables = self.net.init({"params": k_params, "comm": k_comm}, carry, obs, ctx)
        params = {"params": variables["params"]}
        return params, {k: v for k, v in variables.items() if k != "params"}

    def param_groups(self, params):
        """``actor`` (encoder, head, log-std), ``critic``, and ``comm`` (the channel's own)."""
        return groups_by_module(params, {"critic": "critic", "channel": "comm"}, "actor")

    def _dist(self, params, out, obs: Observation) -> ActionDist:
        log_std = None if self.discrete else params["params"]["log_std"]
        if self.cfg.fixed_log_std and log_std is not None:
            log_std = jax.lax.stop_gradient(log_std)
        return ActionDist(out, obs.action_mask, self.discrete, log_std)

    def act(self, params, method_state, carry, obs, key, ctx, deterministic=False) -> Acted:
        k_comm, k_act = jax.random.split(key)
        carry, out, value, extras, aux = self.net.apply(
            {**params, **method_state}, carry, obs, ctx, rngs={"comm": k_comm}
        )
        dist = self._dist(params, out, obs)
        action = dist.mode() if deterministic else dist.sample(k_act)
        return Acted(carry, action, dist.log_prob(action), value, extras, aux)

    def value(self, params, method_state, carry, obs, key, ctx):
        _, critic_carry = carry
        no_reset = obs.replace(reset=jnp.zeros_like(obs.reset))
        variables = {**params, **method_state}
        return self.net.apply(variables, critic_carry, no_reset, method="critic_value")[1]

    def evaluate(self, params, method_state, carry0, obs, action, extras, key, ctx) -> Evaluated:
        def apply(state, carry, obs, extras, key):
            (carry, out, value, _, aux), state = self.net.apply(
                {**params, **state},
                carry,
                obs,
                ctx,
                extras,
                rngs={"comm": key},
                mutable=["method_state"],
            )
            return state, carry, out, value, aux

        if self.recurrent:

            def step(c, x):
                state, carry = c
                state, carry, out, value, aux = apply(state, carry, *x)
                return (state, carry), (out, value, aux)

            keys = jax.random.split(key, obs.reset.shape[0])
            (method_state, _), (out, value, aux) = jax.lax.scan(
                step, (method_state, carry0), (obs, extras, keys)
            )
            aux = jax.tree.map(lambda x: x.mean(0), aux)
        else:
            carry = jax.tree.map(lambda c: jnp.zeros((*obs.reset.shape, *c.shape[-2:])), carry0)
            method_state, _, out, value, aux = apply(method_state, carry, obs, extras, key)
        dist = self._dist(params, out, obs)
        return Evaluated(dist.log_prob(action), dist.entropy(), value, method_state, aux)
