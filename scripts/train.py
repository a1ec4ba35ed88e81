"""Train: ``python scripts/train.py [group=option ...] [key=value ...]`` (Hydra; see configs/)."""

from marl.cli import train_main

if __name__ == "__main__":
    train_main()
