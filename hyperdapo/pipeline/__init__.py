"""Orchestration above the stages: the typed run config (Hydra structured configs), training and evaluation
runs, and the model registry. Entry points (train.py, evaluate.py) call into here and hold no logic."""
