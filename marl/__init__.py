"""Learning: policies, communication methods, PPO training, evaluation, logging."""
