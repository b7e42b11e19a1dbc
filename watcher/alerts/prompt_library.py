"""The team's prompt library (``alerts.prompt_library``): which saved prompts an alert can point to.

A bounded, read-only scan: at most :data:`MAX_PROMPT_FILES_SCANNED` entries,
:data:`MAX_PROMPT_DEPTH` folders deep, the first :data:`FIRST_LINE_BYTES` bytes of
each file, never a symlink out of the folder. It is file I/O, so the alert engine
runs it while planning, before the incident's write transaction
(:meth:`watcher.alerts.engine.AlertEngine.plan`).
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

MAX_PROMPT_FILES_SCANNED = 500
MAX_PROMPT_DEPTH = 6
FIRST_LINE_BYTES = 200

_PROMPT_SUFFIXES = (".md", ".txt")
# fmt: off
_STOPWORDS = frozenset({
    "a", "an", "and", "the", "of", "for", "to", "in", "on", "with", "by", "or", "our", "your", "new", "from", "into", "at", "as", "is", "are",
    "de", "des", "du", "la", "le", "les", "et", "en", "un", "une", "pour", "par", "sur", "aux", "au", "avec", "ou", "nos", "vos",
})
# fmt: on


def scan_prompt_library(root: Path) -> list[tuple[str, str]] | None:
    """(relative path, first line) of up to :data:`MAX_PROMPT_FILES_SCANNED` prompt files; None if unusable.

    Symlinks are never followed out of the folder: a file link is used only if
    its target resolves inside the folder, a directory link is not entered.
    Only the first :data:`FIRST_LINE_BYTES` bytes of a regular file are read.
    """
    try:
        base = Path(root).resolve(strict=True)
        if not base.is_dir():
            return None
        with os.scandir(base):
            pass
    except (OSError, RuntimeError, ValueError):
        return None
    found: list[tuple[str, str]] = []
    budget = MAX_PROMPT_FILES_SCANNED
    stack: list[tuple[Path, int]] = [(base, 0)]
    while stack and budget > 0:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = []
                for entry in it:
                    entries.append(entry)
                    if len(entries) >= budget:
                        break
        except OSError:
            continue
        subdirs: list[Path] = []
        for entry in sorted(entries, key=lambda e: e.name):
            if budget <= 0:
                break
            budget -= 1
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    if depth < MAX_PROMPT_DEPTH:
                        subdirs.append(Path(entry.path))
                    continue
            except OSError:
                continue
            if not entry.name.lower().endswith(_PROMPT_SUFFIXES):
                continue
            path = Path(entry.path)
            first = _first_line(path, base)
            if first is not None:
                found.append((path.relative_to(base).as_posix(), first))
        stack.extend((d, depth + 1) for d in reversed(subdirs))
    return sorted(found)


def _first_line(path: Path, base: Path) -> str | None:
    """The first non-blank line of a prompt file inside ``base``; None to skip the file."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(base):
        return None  # a link out of the library: not ours to read or list
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(real, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        head = os.read(fd, FIRST_LINE_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    for line in head.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            return line.strip()
    return ""


def tokens(text: str) -> set[str]:
    """Lower-case, accent-free words of 2+ letters, minus stop words, with a plural "s" dropped."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    out: set[str] = set()
    for word in re.findall(r"[^\W_]+", text):
        if len(word) < 2 or word in _STOPWORDS or word.isdigit():
            continue
        if (len(word) > 2 and word.endswith("s")) or (len(word) > 3 and word.endswith("x")):
            word = word[:-1]
        out.add(word)
    return out
