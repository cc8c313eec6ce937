"""Fixtures of the dead-letter tests, imported from ``support`` so that pytest finds them
here."""

from support.dlq_world import client
from support.store_world import mstore

__all__ = ["client", "mstore"]
