"""The fenced blocks of a Markdown page and their ``doc-test`` annotations.

Helper of ``tests/test_docs_examples.py`` and ``tests/test_docs_site.py`` (imported by
path: the test folders are not packages). An annotation is an HTML comment on the
line(s) right above a fence, invisible on the rendered page and plain in its source::

    <!-- doc-test: skip (runs until Ctrl+C) -->      not run; the reason is required
    <!-- doc-test: file=handlers/shop/__init__.py --> the block is written to that file
    <!-- doc-test: append=handlers/x/__init__.py --> ... appended to it
    <!-- doc-test: restart -->                       restart the live server first
    <!-- doc-test: output -->                        this block is the previous one's output
    <!-- doc-test: covered-by=tests/test_x.py -->    run by that test instead

Several words may share one comment (``restart output``) or stack in several comments.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
ANNOTATION = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<words>.*?)\s*-->\s*$")
OTHER_COMMENT = re.compile(r"^\s*<!--.*-->\s*$")
#: ``word``, ``word=value`` or ``word (free text)``
DIRECTIVE = re.compile(r"(?P<name>[\w-]+)(?:=(?P<value>\S+))?(?:\s*\((?P<reason>[^)]*)\))?")

SHELL = {"sh", "bash", "shell", "console"}
KNOWN_DIRECTIVES = {"skip", "file", "append", "restart", "output", "covered-by"}


@dataclass
class Block:
    """One fenced block: where it is, its language, its text and its annotations."""

    page: str
    line: int
    language: str
    text: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``page:line`` of the opening fence."""
        return f"{self.page}:{self.line}"

    def has(self, name: str) -> bool:
        """Whether the block carries directive ``name``."""
        return name in self.directives


def parse_directives(words: str, where: str) -> dict[str, str]:
    """``{"skip": "reason", "file": "path", ...}`` of one annotation's words.

    :raises ValueError: an unknown directive, or a skip without a reason
    """
    found: dict[str, str] = {}
    for match in DIRECTIVE.finditer(words):
        name = match["name"]
        if name not in KNOWN_DIRECTIVES:
            raise ValueError(f"{where}: unknown doc-test directive {name!r} (known: {sorted(KNOWN_DIRECTIVES)})")
        value = match["value"] or (match["reason"] or "").strip()
        if name in {"skip", "file", "append", "covered-by"} and not value:
            raise ValueError(f"{where}: doc-test {name} needs {'a reason' if name == 'skip' else 'a path'}")
        found[name] = value
    return found


def blocks_of(path: Path, name: str | None = None) -> list[Block]:
    """Every fenced block of the Markdown file ``path``, in page order.

    :param name: how the page is named in messages (default: the file name)
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    page = name or path.name
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        body: list[str] = []
        close = index + 1
        while close < len(lines):
            candidate = lines[close].strip()
            if candidate.startswith(fence[0] * len(fence)) and set(candidate) == {fence[0]}:
                break
            body.append(lines[close])
            close += 1
        text = textwrap.dedent("\n".join(line[len(indent) :] if line.startswith(indent) else line for line in body))
        where = f"{page}:{index + 1}"
        directives: dict[str, str] = {}
        above = index - 1
        while above >= 0 and OTHER_COMMENT.match(lines[above]):  # the comments right above the fence
            annotation = ANNOTATION.match(lines[above])
            if annotation:
                directives.update(parse_directives(annotation["words"], where))
            above -= 1
        found.append(Block(page, index + 1, opening["info"].lower(), text, directives))
        index = close + 1
    return found
