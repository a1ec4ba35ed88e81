"""Evaluate a run: ``python scripts/evaluate.py run=<dir> [episodes=100] [gif_episodes=3]``."""

from marl.cli import evaluate_main

if __name__ == "__main__":
    evaluate_main()
