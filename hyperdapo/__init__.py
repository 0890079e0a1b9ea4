"""HyperDAPO: train language models to place crypto limit orders with DAPO, and evaluate them honestly.

Data flows one way, and each subpackage imports only the ones before it:
data -> features -> prompts -> execution -> models -> rl -> evaluation.
"""

__version__ = "0.1.0"
