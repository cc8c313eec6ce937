"""Every option of every subcommand says what it does, and the parser tree is walked
rather than listed, so a new verb or flag is covered the day it is added."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from awa.cli.main import VERBS, build_parser


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """``parser`` and every subcommand parser below it, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*path, name))


def undocumented(parser: argparse.ArgumentParser) -> list[str]:
    return [
        "/".join(action.option_strings)
        for action in parser._actions
        if action.option_strings and not (action.help and action.help.strip())
    ]


def test_the_walk_reaches_every_verb_and_nested_subcommand() -> None:
    reached = {path for path, _ in parsers(build_parser())}
    assert {(verb,) for verb in VERBS} <= reached
    assert {("maintenance", "tick"), ("callbacks", "serve"), ("jobs", "list")} <= reached


def test_the_walk_finds_an_option_without_help() -> None:
    parser = build_parser()
    parser.add_argument("--undocumented-flag")
    assert undocumented(parser) == ["--undocumented-flag"]


@pytest.mark.parametrize(
    ("path", "parser"),
    [pytest.param(path, p, id=" ".join(path) or "awa") for path, p in parsers(build_parser())],
)
def test_every_option_has_help(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    assert undocumented(parser) == [], f"awa {' '.join(path)}: options without help"
