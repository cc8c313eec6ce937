"""Fixtures of the examples' tests, imported from ``support`` so that pytest finds them here."""

from support.examples import example

__all__ = ["example"]
