"""The decision service: a trained policy behind ``POST /v1/decide`` (``python -m hyperdapo.serve``)."""
