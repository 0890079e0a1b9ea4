"""Backtest the baselines and the trained policy: ``python evaluate.py [asset=BTC] [evaluate.policy=latest]``."""

from hyperdapo.pipeline.entry import evaluate

if __name__ == "__main__":
    evaluate()
