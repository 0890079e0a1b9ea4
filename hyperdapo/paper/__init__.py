"""Paper trading a trained policy on recorded market data (``python -m hyperdapo.paper``)."""
