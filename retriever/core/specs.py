"""One parser for the spec strings used by the CLI and the API.

A spec is ``name(arg, arg, key=value, ...)``, optionally prefixed by ``label=``;
the parentheses may be omitted when there are no arguments. Values containing
commas or parentheses are quoted: ``dense(factory='IVF256,PQ16')``. Specs
round-trip: ``str(parse_spec(s))`` is the canonical form of ``s``.

Examples:
    >>> parse_spec("hnsw=dense(factory=HNSW32)")
    Spec(name='dense', args=(), kwargs={'factory': 'HNSW32'}, label='hnsw')
    >>> str(parse_spec("rrf( bm25 , dense, k=60 )"))
    'rrf(bm25,dense,k=60)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from retriever.core.errors import SpecError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_SAFE_VALUE = re.compile(r"[^,()'\"=\s]+")


@dataclass(frozen=True)
class Spec:
    """A parsed spec: ``label=name(args..., key=value...)``."""

    name: str
    args: tuple[str, ...] = ()
    kwargs: dict[str, str] = field(default_factory=dict)
    label: str | None = None

    def __str__(self) -> str:
        parts = [*map(_quote, self.args), *(f"{k}={_quote(v)}" for k, v in self.kwargs.items())]
        body = f"{self.name}({','.join(parts)})" if parts else self.name
        return f"{self.label}={body}" if self.label else body


def parse_spec(text: str) -> Spec:
    """Parse a spec string. Raises :class:`SpecError` pointing at the bad character."""
    parser = _Parser(text)
    spec = parser.spec()
    parser.skip_space()
    if parser.pos != len(text):
        parser.fail("unexpected text")
    return spec


def _quote(value: str) -> str:
    return value if _SAFE_VALUE.fullmatch(value) else "'" + value.replace("'", "\\'") + "'"


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def fail(self, message: str) -> None:
        raise SpecError(f"{message} at position {self.pos} in spec {self.text!r}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def name(self) -> str:
        self.skip_space()
        match = _NAME.match(self.text, self.pos)
        if not match:
            self.fail("expected a name")
        self.pos = match.end()
        return match.group()

    def value(self) -> str:
        quote = self.peek()
        if quote in ("'", '"'):
            out, self.pos = [], self.pos + 1
            while self.pos < len(self.text) and self.text[self.pos] != quote:
                if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                    self.pos += 1
                out.append(self.text[self.pos])
                self.pos += 1
            if self.pos >= len(self.text):
                self.fail("unterminated quote")
            self.pos += 1
            return "".join(out)
        match = _SAFE_VALUE.match(self.text, self.pos)
        if not match:
            self.fail("expected a value")
        self.pos = match.end()
        return match.group()

    def spec(self) -> Spec:
        label, name = None, self.name()
        if self.peek() == "=":
            self.pos += 1
            label, name = name, self.name()
        args: list[str] = []
        kwargs: dict[str, str] = {}
        if self.peek() == "(":
            self.pos += 1
            while self.peek() != ")":
                if not self.peek():
                    self.fail("missing ')'")
                item = self.value()
                if self.peek() == "=":
                    self.pos += 1
                    if item in kwargs:
                        self.fail(f"repeated key {item!r}")
                    kwargs[item] = self.value()
                elif kwargs:
                    self.fail("positional argument after key=value")
                else:
                    args.append(item)
                if self.peek() == ",":
                    self.pos += 1
                elif self.peek() != ")":
                    self.fail("expected ',' or ')'")
            self.pos += 1
        return Spec(name, tuple(args), kwargs, label)
