"""Plot learning curves: ``python scripts/plot.py runs=[dir1,dir2] [labels=[a,b]] out=fig.png``."""

from marl.cli import plot_main

if __name__ == "__main__":
    plot_main()
