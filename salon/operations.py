"""Imports every module that registers write operations, so the actor knows them all."""

from salon import availability, bookings, catalogue, generation

__all__ = ["availability", "bookings", "catalogue", "generation"]
