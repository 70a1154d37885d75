"""Imports every module that registers write operations, so the actor knows them all."""

from salon import catalogue

__all__ = ["catalogue"]
