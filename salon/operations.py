"""Imports every module that registers write operations, so the actor knows them all."""

from salon import availability, catalogue, generation

__all__ = ["availability", "catalogue", "generation"]
