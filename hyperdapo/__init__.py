"""HyperDAPO: train language models to place crypto limit orders with DAPO, and evaluate them honestly.

Data flows one way, and each subpackage imports only the ones before it:
data -> features -> prompts -> execution -> models -> rl -> evaluation.
"""

from pathlib import Path

__version__ = "0.1.0"
# The Hydra config tree: hyperdapo/conf is a symlink to the repository's conf/ in a checkout (resolved here) and
# package data in an installed wheel, so train.py, the console scripts and load_asset find it from anywhere.
CONF_DIR = (Path(__file__).parent / "conf").resolve()
