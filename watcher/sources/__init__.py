"""Source parsers, one module per format. :func:`parser_for` maps a catalog type to its parser.

Every parser is a pure ``parse(body: bytes, options: SourceOptions) -> Snapshot``
that raises only :class:`~watcher.sources.base.ParseError`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from watcher.model import Snapshot
from watcher.sources.base import ParseError, SourceOptions

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
    """The parse function for a source type (modules are imported on first use)."""
    try:
        module = _MODULES[source_type]
    except KeyError:
        raise ValueError(f"unknown source type {source_type!r}") from None
    return importlib.import_module(f"watcher.sources.{module}").parse


__all__ = ["ParseError", "Parser", "SourceOptions", "parser_for"]
