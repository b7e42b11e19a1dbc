"""Source parsers, one module per format. :func:`parser_for` maps a catalog type to its parser.

Every parser is a pure ``parse(body: bytes, options: SourceOptions) -> Snapshot``
that raises only :class:`~watcher.sources.base.ParseError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from watcher.model import Snapshot
from watcher.sources.base import ParseError, SourceOptions, clean_snapshot

Parser = Callable[[bytes, SourceOptions], Snapshot]

_MODULES = {
    "statuspage": "statuspage",
    "statuspage_incidents": "statuspage",
    "statuspage_maintenances": "statuspage",
    "instatus": "instatus",
    "betterstack": "betterstack",
    "gcp": "gcp",
    "feed": "feeds",
    "html": "html",
    "checkly": "checkly",
}


def parser_for(source_type: str) -> Parser:
    """The parse function for a source type (modules are imported on first use).

    What it returns has invisible and bidi-control characters stripped from every vendor string
    (:func:`~watcher.sources.base.clean_snapshot`), and a document of an unexpected shape that a
    parser did not foresee is still a ParseError (a source error), never a crash of the poll.
    """
    try:
        module = _MODULES[source_type]
    except KeyError:
        raise ValueError(f"unknown source type {source_type!r}") from None
    parse = importlib.import_module(f"watcher.sources.{module}").parse

    def parse_clean(body: bytes, options: SourceOptions | None = None) -> Snapshot:
        try:
            snap = parse(body, options)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError, OverflowError) as e:
            if isinstance(e, ParseError):
                raise
            raise ParseError(f"unexpected document shape ({type(e).__name__}: {e})") from None
        return clean_snapshot(snap)

    return parse_clean


__all__ = ["ParseError", "Parser", "SourceOptions", "parser_for"]
