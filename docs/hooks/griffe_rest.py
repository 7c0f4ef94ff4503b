"""Griffe extension: lrkit's reST-flavoured docstrings, read as Markdown by mkdocstrings.

The docstrings in ``src/`` are written for plain ``help()`` and doctest: Sphinx roles
(``:func:`lrkit.to_torch```), double-backtick literals and ``>>>`` examples. Markdown would
show the roles as text and turn ``>>>`` into nested quotes, so while the API pages build:

- ``:role:`target``` becomes the code span ``target`` (``~a.b.c`` shows ``c``);
- each run of ``>>>`` lines with their output becomes a ``pycon`` code block, its
  ``# doctest:`` directives dropped.

The source is left as it is.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):`([^`]+)`")
DIRECTIVE = re.compile(r"\s*# doctest:.*$")


def _role(match: re.Match[str]) -> str:
    target = match[1].strip()
    if "<" in target and target.endswith(">"):  # :func:`text <target>`
        return f"`{target.split('<')[0].strip()}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def _doctests(text: str) -> str:
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            block: list[str] = []
            while i < len(lines) and lines[i].strip():
                block.append(DIRECTIVE.sub("", lines[i].removeprefix(indent)).rstrip())
                i += 1
            if out and out[-1].strip():
                out.append("")
            out += [f"{indent}```pycon", *(f"{indent}{b}" for b in block), f"{indent}```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def to_markdown(text: str) -> str:
    return _doctests(ROLE.sub(_role, text))


class RestToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
