"""Fixtures of the cron tests, imported from ``support`` so that pytest finds them here."""

from support.store_world import mstore

__all__ = ["mstore"]
