"""Reading values out of LLM replies: the <IMPROVED_VARIABLE> tags every optimizer prompt asks for, and Markdown
fences. Domains use these in their `parse` instead of declaring their own patterns."""

from __future__ import annotations

import re
from collections.abc import Callable

from tgdomains.domain import ParseError
from tgdomains.prompts import TAG

_OPEN = re.compile(rf"<{TAG}>", re.I)
_CLOSE = re.compile(rf"</{TAG}>", re.I)
_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.S)  # ```lang (rest of the line)\n body ```


def tagged_blocks(text: str) -> list[str]:
    """The contents of every closed <IMPROVED_VARIABLE> block, in order (case-insensitive; linear time)."""
    text, found, pos = text or "", [], 0
    while (opening := _OPEN.search(text, pos)) is not None:
        closing = _CLOSE.search(text, opening.end())
        if closing is None:  # no later opening can be closed either
            break
        found.append(text[opening.end():closing.start()])
        pos = closing.end()
    return found


def extract_tagged(reply: str) -> str:
    """The value inside the last <IMPROVED_VARIABLE> block; ParseError naming what is wrong otherwise."""
    found = tagged_blocks(reply)
    if not found:
        if _OPEN.search(reply or ""):
            raise ParseError(f"the <{TAG}> block is not closed (the reply may have been cut off)")
        raise ParseError(f"no <{TAG}>...</{TAG}> block in the reply")
    value = found[-1].strip("\n")
    if not value.strip():
        raise ParseError(f"the <{TAG}> block is empty")
    return value


def text_before_tags(reply: str) -> str:
    """What a reply says before its first tag (one-call mode's critique)."""
    opening = _OPEN.search(reply or "")
    return (reply or "")[:opening.start() if opening else None].strip()


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """Every Markdown code fence as (language in lower case, body), in order."""
    return [(lang.lower(), body) for lang, body in _FENCE.findall(text or "")]


def replace_fenced(text: str, replacement: Callable[[str], str | None]) -> str:
    """`text` with each fenced block whose body `replacement` maps to a string replaced by that string (None keeps
    the block)."""
    def sub(match: re.Match) -> str:
        new = replacement(match.group(2))
        return match.group(0) if new is None else new
    return _FENCE.sub(sub, text or "")


def strip_fence(text: str) -> str:
    """The body of the last fenced block, or the text itself without wrapping backticks."""
    blocks = fenced_blocks(text)
    return blocks[-1][1] if blocks else (text or "").strip().strip("`")
