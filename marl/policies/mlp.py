"""IPPO and MAPPO actor-critics: per-agent MLP (optionally GRU) actor and critic.

IPPO's critic sees the agent's own observation, MAPPO's the global state. With parameter
sharing one network serves all agents (plus an agent-id one-hot, optionally); without it
each agent has its own weights (``nn.vmap`` over the agent axis).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from envs.core import AgentSpaces
from marl.config import PolicyConfig
from marl.networks import Torso
from marl.policies.base import ActionDist, ActorCritic, Observation


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
    cfg: PolicyConfig
    num_agents: int
    action_dim: int
    discrete: bool
    centralised: bool

    def setup(self):
        c = self.cfg
        gru = c.gru_size if c.recurrent else 0
        common = {"activation": c.activation, "gru_size": gru}
        actor = {"hidden": tuple(c.actor_hidden), "out_dim": self.action_dim, "out_scale": 0.01}
        critic = {"hidden": tuple(c.critic_hidden), "out_dim": 1, "out_scale": 1.0}
        share = c.share_parameters
        self.actor = PerAgent({**actor, **common}, self.num_agents, share)
        self.critic = PerAgent({**critic, **common}, self.num_agents, share)
        if not self.discrete:
            shape = (self.action_dim,) if share else (self.num_agents, self.action_dim)
            self.log_std = self.param("log_std", nn.initializers.constant(c.log_std_init), shape)

    def _with_id(self, x):
        if not self.cfg.agent_id:
            return x
        ids = jnp.broadcast_to(jnp.eye(self.num_agents), (*x.shape[:-1], self.num_agents))
        return jnp.concatenate([x, ids], -1)

    def critic_value(self, carry, obs: Observation):
        n = self.num_agents
        if self.centralised:
            x = jnp.broadcast_to(
                obs.state[..., None, :], (*obs.state.shape[:-1], n, obs.state.shape[-1])
            )
        else:
            x = obs.obs
        carry, v = self.critic(carry, self._with_id(x), obs.reset)
        return carry, v[..., 0]

    def __call__(self, carry, obs: Observation):
        actor_carry, critic_carry = carry
        actor_carry, out = self.actor(actor_carry, self._with_id(obs.obs), obs.reset)
        critic_carry, value = self.critic_value(critic_carry, obs)
        return (actor_carry, critic_carry), out, value


class MLPActorCritic(ActorCritic):
    def __init__(self, cfg: PolicyConfig, env: AgentSpaces, centralised: bool):
        self.cfg = cfg
        self.num_agents = env.num_agents
        self.discrete = env.discrete
        self.recurrent = cfg.recurrent
        self.net = ActorCriticNet(cfg, env.num_agents, env.action_dim, env.discrete, centralised)

    def initial_carry(self, batch_shape):
        size = self.cfg.gru_size if self.recurrent else 1
        zeros = jnp.zeros((*batch_shape, self.num_agents, size))
        return zeros, zeros

    def init(self, key, obs: Observation):
        return self.net.init(key, self.initial_carry(obs.reset.shape), obs)

    def param_labels(self, params):
        """Two groups, ``actor`` (with the log-std) and ``critic``, for ``algo.group_lr``."""
        return {
            "params": {
                name: jax.tree.map(lambda _, g="critic" if name == "critic" else "actor": g, tree)
                for name, tree in params["params"].items()
            }
        }

    def _dist(self, params, out, obs: Observation) -> ActionDist:
        log_std = None if self.discrete else params["params"]["log_std"]
        return ActionDist(out, obs.action_mask, self.discrete, log_std)

    def act(self, params, carry, obs: Observation, key, deterministic: bool = False):
        carry, out, value = self.net.apply(params, carry, obs)
        dist = self._dist(params, out, obs)
        action = dist.mode() if deterministic else dist.sample(key)
        return carry, action, dist.log_prob(action), value, {}

    def value(self, params, carry, obs: Observation):
        _, critic_carry = carry
        no_reset = obs.replace(reset=jnp.zeros_like(obs.reset))
        return self.net.apply(params, critic_carry, no_reset, method=ActorCriticNet.critic_value)[1]

    def evaluate(self, params, carry0, obs: Observation, action):
        if self.recurrent:

            def step(carry, x):
                carry, out, value = self.net.apply(params, carry, x)
                return carry, (out, value)

            _, (out, value) = jax.lax.scan(step, carry0, obs)
        else:
            carry = jax.tree.map(lambda c: jnp.zeros((*obs.reset.shape, *c.shape[-2:])), carry0)
            _, out, value = self.net.apply(params, carry, obs)
        dist = self._dist(params, out, obs)
        return dist.log_prob(action), dist.entropy(), value, {}
