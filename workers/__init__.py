"""Dramatiq actors: every write to booking state happens here, one transaction per message."""
