"""Multi-particle environments in JAX, step-for-step equal to mpe2."""

from envs.mpe.reference import Reference
from envs.mpe.speaker_listener import SpeakerListener
from envs.mpe.spread import Spread
from envs.mpe.tag import Tag
from envs.mpe.world import MPEState, ParticleEnv

__all__ = ["MPEState", "ParticleEnv", "Reference", "SpeakerListener", "Spread", "Tag"]
