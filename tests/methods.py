"""Methods and an environment that exercise the learner's plug points in tests: a channel
of random messages (stored extras), a probe channel (context, matrix metrics, method state,
a loss term, a statistics hook), a policy with a second, team-level role, and a two-armed
bandit. Importing this module registers them (``comm=random``, ``comm=probe``,
``policy=noisy``, ``policy=team``, ``test/bandit``)."""

from __future__ import annotations

from dataclasses import dataclass

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from hydra.core.config_store import ConfigStore

import envs
from envs.core import MultiAgentEnv, SharedSpaces, TimeStep
from marl.comm import register_channel
from marl.config import CommConfig
from marl.policies import Evaluated, MLPConfig, Role, register_policy
from marl.policies.mlp import MLPActorCritic
from tests.example_policy import NoisyConfig


@dataclass
class RandomConfig(CommConfig):
    name: str = "random"
    dim: int = 3


class RandomMessages(nn.Module):
    """Each agent hears ``dim`` uniform random numbers per step, drawn while acting."""

    dim: int

    @nn.compact
    def __call__(self, h, obs, ctx, extras=None):
        if extras is None:
            extras = jax.random.uniform(self.make_rng("comm"), (*h.shape[:-1], self.dim))
        return jnp.concatenate([h, extras], -1), extras, {}


class Probe(nn.Module):
    """Agents mix their features through a learned N x N matrix. Reports the training
    context, the matrix (a metric), keeps an EMA of the features (method state), adds a
    small loss, and counts actions in the evaluation episodes (statistics hook)."""

    @nn.compact
    def __call__(self, h, obs, ctx, extras=None):
        n = h.shape[-2]
        mix = jax.nn.softmax(self.param("mix", nn.initializers.normal(1.0), (n, n)), -1)
        ema = self.variable("method_state", "ema", jnp.zeros, h.shape[-1])
        if self.is_mutable_collection("method_state"):
            ema.value = 0.9 * ema.value + 0.1 * h.mean(tuple(range(h.ndim - 1)))
        aux = {"ctx/update": ctx.update, "ctx/epoch": ctx.epoch, "ctx/progress": ctx.progress}
        aux["mix"] = mix
        if extras is None:  # acting: per-env step metrics
            aux = jax.tree.map(lambda x: jnp.broadcast_to(x, (*h.shape[:-2], *x.shape)), aux)
        else:
            aux["loss/probe"] = 1e-3 * jnp.sum(mix**2)
        return h + jnp.einsum("ij,...jh->...ih", mix, h), {}, aux

    def statistics(self, episodes):
        valid = np.asarray(episodes.valid)[..., None]  # [S, T, E, 1]
        actions = np.asarray(episodes.action)
        return {
            "valid_steps": float(valid.sum()),
            "action_counts": np.bincount(
                actions[np.broadcast_to(valid, actions.shape)], minlength=5
            ),
        }


class TeamPolicy(MLPActorCritic):
    """MAPPO with random messages, plus a second learner: a team-level ``messenger`` that
    draws a Gaussian scalar from the global state each step (stored), trained on the
    team-mean reward with its own value head and parameter group."""

    roles = {"agents": Role(), "messenger": Role(units="team", reward="team")}

    def __init__(self, cfg, env, channel, num_updates):
        super().__init__(cfg, env, RandomMessages(1), num_updates)
        self.messenger = nn.Dense(2)

    def param_groups(self, params):
        groups = super().param_groups({"params": params["params"]})
        return {**groups, "messenger": jax.tree.map(lambda _: "messenger", params["messenger"])}

    def init(self, key, obs):
        params, state = super().init(key, obs)
        params["messenger"] = self.messenger.init(key, obs.state)
        return params, state

    def _messenger(self, params, obs):
        mean, value = jnp.moveaxis(self.messenger.apply(params["messenger"], obs.state), -1, 0)
        return distrax.Normal(mean, 0.5), value[..., None]

    def act(self, params, method_state, carry, obs, key, ctx, deterministic=False):
        k_msg, k_agents = jax.random.split(key)
        dist, value = self._messenger(params, obs)
        msg = dist.mode() if deterministic else dist.sample(seed=k_msg)
        out = super().act(params, method_state, carry, obs, k_agents, ctx, deterministic)
        return out._replace(
            log_prob={"agents": out.log_prob, "messenger": dist.log_prob(msg)[..., None]},
            value={"agents": out.value, "messenger": value},
            extras={"msg": msg, "comm": out.extras},
        )

    def value(self, params, method_state, carry, obs, key, ctx):
        agents = super().value(params, method_state, carry, obs, key, ctx)
        return {"agents": agents, "messenger": self._messenger(params, obs)[1]}

    def evaluate(self, params, method_state, carry0, obs, action, extras, key, ctx):
        out = super().evaluate(params, method_state, carry0, obs, action, extras["comm"], key, ctx)
        dist, value = self._messenger(params, obs)
        return Evaluated(
            {"agents": out.log_prob, "messenger": dist.log_prob(extras["msg"])[..., None]},
            {"agents": out.entropy, "messenger": dist.entropy()[..., None]},
            {"agents": out.value, "messenger": value},
            out.method_state,
            out.aux,
        )


@dataclass
class TeamConfig(MLPConfig):
    name: str = "team"


class Bandit(SharedSpaces, MultiAgentEnv):
    """One agent, one step, two arms: arm 1 pays N(1, 0.5), arm 0 pays N(0, 0.5). The
    observation is noise (nothing to learn from it)."""

    name = "test/bandit"
    agents = ("agent_0",)
    state_dim = 1
    max_steps = 1

    def __init__(self):
        self._obs_space = spaces.Box(0.0, 1.0, (1,), np.float32)
        self._action_space = spaces.Discrete(2)

    def _timestep(self, key, reward, done):
        return TimeStep(
            obs=jax.random.uniform(key, (1, 1)),
            state=jnp.ones(1),
            reward=reward,
            terminated=jnp.array(done),
            truncated=jnp.array(False),
            active=jnp.ones(1, bool),
            action_mask=jnp.ones((1, 2), bool),
            info={"best_arm": jnp.array(0.0)},
        )

    def reset(self, key):
        return jnp.zeros(()), self._timestep(key, jnp.zeros(1), False)

    def step(self, key, state, actions):
        k_obs, k_reward = jax.random.split(key)
        reward = actions.astype(jnp.float32) + 0.5 * jax.random.normal(k_reward, (1,))
        ts = self._timestep(k_obs, reward, True)
        return state, ts.replace(info={"best_arm": (actions[0] == 1).astype(jnp.float32)})


register_channel("random", RandomConfig, lambda cfg, env: RandomMessages(cfg.dim))
register_channel("probe", CommConfig, lambda cfg, env: Probe())
register_policy("team", TeamConfig, TeamPolicy, uses_comm=False)
envs.register("test/bandit", Bandit)
store = ConfigStore.instance()
store.store(group="policy", name="noisy", node=NoisyConfig)
store.store(group="policy", name="team", node=TeamConfig)
