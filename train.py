"""Train a limit-order policy: ``python train.py [asset=BTC] [algo=dapo] [model=tiny] ...`` (see conf/, ``--help``)."""

from hyperdapo.pipeline.entry import train

if __name__ == "__main__":
    train()
