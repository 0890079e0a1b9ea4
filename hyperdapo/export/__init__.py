"""Export a trained policy as a folder that loads with transformers / peft alone (``python -m hyperdapo.export``)."""
