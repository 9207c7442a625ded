"""A small GBNF reader for tests: does a grammar admit a string, and strings a grammar admits (for hypothesis).

It reads the subset of llama.cpp's GBNF that tgdomains writes: rules `name ::= ...`, string literals, character
classes (ranges, negation, \\x \\u \\U escapes), grouping, alternatives, `? * +` and `{m}`, `{m,}`, `{m,n}`. The
matcher is a set-of-positions recursive descent (right recursion is fine, left recursion is not used).
llama.cpp itself also parses every grammar in tests/core/test_grammar.py (when llama-cpp-python is installed).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache

from hypothesis import strategies as st

sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "^": "^",
            "/": "/"}


@dataclass(frozen=True)
class Lit:
    text: str


@dataclass(frozen=True)
class Class:
    ranges: tuple[tuple[str, str], ...]
    negated: bool

    def has(self, ch: str) -> bool:
        inside = any(lo <= ch <= hi for lo, hi in self.ranges)
        return inside != self.negated


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Alt:
    options: tuple


@dataclass(frozen=True)
class Rep:
    item: object
    low: int
    high: int | None  # None: unbounded


def _escape(text: str, i: int) -> tuple[str, int]:
    """The character of the escape at text[i] == '\\' and the index after it."""
    kind = text[i + 1]
    width = {"x": 2, "u": 4, "U": 8}.get(kind)
    if width:
        return chr(int(text[i + 2:i + 2 + width], 16)), i + 2 + width
    return _ESCAPES[kind], i + 2


class Grammar:
    def __init__(self, text: str) -> None:
        self.rules: dict[str, object] = {}
        self._text = text
        self._i = 0
        self._parse()
        missing = {r for node in self.rules.values() for r in _refs(node)} - set(self.rules)
        if missing:
            raise ValueError(f"undefined rules: {sorted(missing)}")

    # -- parsing ------------------------------------------------------------------------------------------------

    def _skip(self) -> None:
        while self._i < len(self._text):
            if self._text[self._i] in " \t\n\r":
                self._i += 1
            elif self._text[self._i] == "#":
                while self._i < len(self._text) and self._text[self._i] != "\n":
                    self._i += 1
            else:
                break

    def _rule_start(self) -> re.Match | None:
        return re.compile(r"([A-Za-z0-9-]+)\s*::=").match(self._text, self._i)

    def _parse(self) -> None:
        self._skip()
        while self._i < len(self._text):
            start = self._rule_start()
            if start is None:
                raise ValueError(f"expected a rule at {self._text[self._i:self._i + 40]!r}")
            self._i = start.end()
            self.rules[start.group(1)] = self._alt()
            self._skip()

    def _alt(self) -> object:
        options = [self._seq()]
        while True:
            self._skip()
            if self._i < len(self._text) and self._text[self._i] == "|":
                self._i += 1
                options.append(self._seq())
            else:
                return options[0] if len(options) == 1 else Alt(tuple(options))

    def _seq(self) -> object:
        items = []
        while True:
            self._skip()
            if self._i >= len(self._text) or self._text[self._i] in "|)" or self._rule_start():
                return items[0] if len(items) == 1 else Seq(tuple(items))
            items.append(self._postfix())

    def _postfix(self) -> object:
        node = self._primary()
        while self._i < len(self._text):
            ch = self._text[self._i]
            if ch in "*+?":
                self._i += 1
                node = Rep(node, 1 if ch == "+" else 0, 1 if ch == "?" else None)
            elif ch == "{":
                m = re.compile(r"\{(\d+)(,(\d*))?\}").match(self._text, self._i)
                self._i = m.end()
                low = int(m.group(1))
                high = low if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                node = Rep(node, low, high)
            else:
                break
        return node

    def _primary(self) -> object:
        text, i = self._text, self._i
        if text[i] == '"':
            out, i = [], i + 1
            while text[i] != '"':
                if text[i] == "\\":
                    ch, i = _escape(text, i)
                else:
                    ch, i = text[i], i + 1
                out.append(ch)
            self._i = i + 1
            return Lit("".join(out))
        if text[i] == "[":
            i += 1
            negated = text[i] == "^"
            i += negated
            ranges = []
            while text[i] != "]":
                if text[i] == "\\":
                    lo, i = _escape(text, i)
                else:
                    lo, i = text[i], i + 1
                hi = lo
                if text[i] == "-" and text[i + 1] != "]":
                    if text[i + 1] == "\\":
                        hi, i = _escape(text, i + 1)
                    else:
                        hi, i = text[i + 1], i + 2
                ranges.append((lo, hi))
            self._i = i + 1
            return Class(tuple(ranges), negated)
        if text[i] == "(":
            self._i = i + 1
            node = self._alt()
            self._skip()
            assert self._text[self._i] == ")", self._text[self._i:self._i + 30]
            self._i += 1
            return node
        if text[i] == ".":
            self._i = i + 1
            return Class((), True)
        m = re.compile(r"[A-Za-z0-9-]+").match(text, i)
        if not m:
            raise ValueError(f"unexpected {text[i:i + 30]!r}")
        self._i = m.end()
        return Ref(m.group(0))

    # -- matching -----------------------------------------------------------------------------------------------

    def matches(self, s: str, rule: str = "root") -> bool:
        @cache
        def ref(name: str, i: int) -> frozenset[int]:
            return frozenset(ends(self.rules[name], i))

        def ends(node: object, i: int) -> set[int]:
            if isinstance(node, Lit):
                return {i + len(node.text)} if s.startswith(node.text, i) else set()
            if isinstance(node, Class):
                return {i + 1} if i < len(s) and node.has(s[i]) else set()
            if isinstance(node, Ref):
                return set(ref(node.name, i))
            if isinstance(node, Seq):
                positions = {i}
                for item in node.items:
                    positions = {e for p in positions for e in ends(item, p)}
                    if not positions:
                        break
                return positions
            if isinstance(node, Alt):
                return {e for option in node.options for e in ends(option, i)}
            if isinstance(node, Rep):
                result = {i} if node.low == 0 else set()
                frontier, count, seen = {i}, 0, set()
                while frontier and (node.high is None or count < node.high):
                    frontier = {e for p in frontier for e in ends(node.item, p)} - (seen if node.high is None
                                                                                      else set())
                    count += 1
                    seen |= frontier
                    if count >= node.low:
                        result |= frontier
                return result
            raise TypeError(node)

        # right-recursive rules recurse once per character (several frames each): a long reply needs more than
        # Python's default depth (hypothesis found 11 tags in a row, ~200 characters)
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 1000 + 40 * len(s)))
        try:
            return len(s) in ref(rule, 0)
        finally:
            sys.setrecursionlimit(limit)

    # -- generating ---------------------------------------------------------------------------------------------

    def strings(self, rule: str = "root", alphabet: str = "", max_repeat: int = 6) -> st.SearchStrategy[str]:
        """Strings the grammar admits. Negated classes draw from `alphabet` (plus any character) where allowed."""
        cache: dict[str, st.SearchStrategy[str]] = {}

        def of(node: object) -> st.SearchStrategy[str]:
            if isinstance(node, Lit):
                return st.just(node.text)
            if isinstance(node, Class):
                inside = [c for c in alphabet if node.has(c)]
                if not node.negated:
                    inside += [lo for lo, _ in node.ranges] + [hi for _, hi in node.ranges]
                    ranged = st.one_of([st.characters(min_codepoint=ord(lo), max_codepoint=ord(hi))
                                        for lo, hi in node.ranges])
                    return st.one_of(st.sampled_from(inside), ranged)
                anything = st.characters(codec="utf-8").filter(node.has)
                return st.one_of(st.sampled_from(inside), anything) if inside else anything
            if isinstance(node, Ref):
                if node.name not in cache:
                    cache[node.name] = st.deferred(lambda: of(self.rules[node.name]))
                return cache[node.name]
            if isinstance(node, Seq):
                return st.tuples(*[of(item) for item in node.items]).map("".join)
            if isinstance(node, Alt):
                return st.one_of([of(option) for option in node.options])
            if isinstance(node, Rep):
                high = node.high if node.high is not None else node.low + max_repeat
                return st.lists(of(node.item), min_size=node.low, max_size=min(high, node.low + max_repeat)) \
                    .map("".join)
            raise TypeError(node)

        return of(self.rules[rule])


def _refs(node: object) -> set[str]:
    if isinstance(node, Ref):
        return {node.name}
    if isinstance(node, (Seq, Alt)):
        return {r for child in (node.items if isinstance(node, Seq) else node.options) for r in _refs(child)}
    if isinstance(node, Rep):
        return _refs(node.item)
    return set()


def llama_cpp_reads(grammar: str) -> bool:
    """Whether llama.cpp's own GBNF parser accepts `grammar`; skips the test where llama-cpp-python or a model
    (whose vocabulary the grammar sampler needs; only the vocabulary is loaded) is missing."""
    import pytest

    llama_cpp = pytest.importorskip("llama_cpp")
    from tgdomains.engines import models

    path = models.model_file(models.SMOLLM2_135M) or models.model_file(models.DEFAULT_MODEL)
    if path is None:
        pytest.skip("no GGUF here to read a vocabulary from")
    llama = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    try:
        sampler = llama_cpp.llama_sampler_init_grammar(llama_cpp.llama_model_get_vocab(llama.model),
                                                       grammar.encode(), b"root")
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True
    finally:
        llama.close()  # now, while llama_cpp's globals exist (at interpreter exit they may not)
