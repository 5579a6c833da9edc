"""The ``--keep`` filter language: a tokenizer and a recursive-descent parser over metric names, never ``eval``.

Grammar (case-sensitive keywords)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | primary
    primary := "(" expr ")" | operand OP operand
    operand := NAME | NUMBER          (NAME: a known metric; NUMBER: decimal, optional sign/exponent, nan/inf not)
    OP      := "<" | "<=" | ">" | ">=" | "==" | "!="

Anything else (an unknown character, a keyword in the wrong place, a call, an attribute) is a :class:`KeepError`
naming the token and its 1-based character position; an unknown name lists the known ones. Input is limited to
:data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` nested parentheses/``not`` so hostile input cannot exhaust
the stack. Comparisons with NaN (a metric that is undefined for a clip) are false, as in IEEE arithmetic.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

MAX_LENGTH = 4096
MAX_DEPTH = 64
_TOKEN = re.compile(r"\s*(?:(?P<num>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
                    r"|(?P<op><=|>=|==|!=|<|>)|(?P<paren>[()]))")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}
_KEYWORDS = ("and", "or", "not")


class KeepError(ValueError):
    """A --keep expression that is not in the language (message names the token and position)."""


@dataclass(frozen=True)
class Token:
    kind: str  # num | name | op | paren | end | bad
    text: str
    pos: int  # 1-based character position


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; an unknown character ends the list as a ``bad`` token (the parser reports it)."""
    if len(text) > MAX_LENGTH:
        raise KeepError(f"expression is {len(text)} characters long (at most {MAX_LENGTH})")
    out, i = [], 0
    while i < len(text):
        if text[i:].strip() == "":
            break
        m = _TOKEN.match(text, i)
        if m is None or m.lastgroup is None:  # reported when the parser reaches it, so earlier errors come first
            j = len(text) - len(text[i:].lstrip())
            out.append(Token("bad", text[j], j + 1))
            return out
        kind = m.lastgroup
        out.append(Token(kind, m.group(kind), m.start(kind) + 1))
        i = m.end()
    out.append(Token("end", "end of expression", len(text) + 1))
    return out


class Expr:
    """A parsed expression: ``evaluate(values)`` -> bool; ``names`` are the metrics it reads."""

    def __init__(self, text: str, fn: Callable[[Mapping[str, float]], bool], names: frozenset[str]) -> None:
        self.text, self._fn, self.names = text, fn, names

    def evaluate(self, values: Mapping[str, float]) -> bool:
        """True when a clip with these metric values is kept."""
        return bool(self._fn(values))

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


def parse(text: str, known: Iterable[str]) -> Expr:
    """Parse a --keep expression over the metric names ``known``; raises KeepError on anything else."""
    parser = _Parser(tokenize(str(text)), tuple(known))
    fn = parser.expr(0)
    parser.expect_end()
    return Expr(str(text), fn, frozenset(parser.names))


class _Parser:
    def __init__(self, tokens: list[Token], known: tuple[str, ...]) -> None:
        self.tokens, self.known, self.i = tokens, known, 0
        self.names: set[str] = set()

    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind == "bad":
            raise self.fail(tok, "")
        self.i += 1
        return tok

    def fail(self, tok: Token, want: str) -> KeepError:
        if tok.kind == "bad":
            return KeepError(f"unexpected character {tok.text!r} at position {tok.pos}")
        shown = tok.text if tok.kind == "end" else repr(tok.text)
        return KeepError(f"unexpected {shown} at position {tok.pos}: expected {want}")

    def expect_end(self) -> None:
        if self.peek().kind != "end":
            raise self.fail(self.peek(), "'and', 'or' or the end of the expression")

    def _depth(self, depth: int) -> int:
        if depth >= MAX_DEPTH:
            raise KeepError(f"expression nests deeper than {MAX_DEPTH} levels at position {self.peek().pos}")
        return depth + 1

    def expr(self, depth: int) -> Callable[[Mapping[str, float]], bool]:
        parts = [self.conj(depth)]
        while self.peek().kind == "name" and self.peek().text == "or":
            self.take()
            parts.append(self.conj(depth))
        ps = tuple(parts)
        return ps[0] if len(ps) == 1 else (lambda v: any(p(v) for p in ps))

    def conj(self, depth: int) -> Callable[[Mapping[str, float]], bool]:
        parts = [self.neg(depth)]
        while self.peek().kind == "name" and self.peek().text == "and":
            self.take()
            parts.append(self.neg(depth))
        ps = tuple(parts)
        return ps[0] if len(ps) == 1 else (lambda v: all(p(v) for p in ps))

    def neg(self, depth: int) -> Callable[[Mapping[str, float]], bool]:
        tok = self.peek()
        if tok.kind == "name" and tok.text == "not":
            self.take()
            inner = self.neg(self._depth(depth))
            return lambda v: not inner(v)
        if tok.kind == "paren" and tok.text == "(":
            self.take()
            inner = self.expr(self._depth(depth))
            close = self.take()
            if close.text != ")":
                raise self.fail(close, "')'")
            return inner
        return self.comparison()

    def comparison(self) -> Callable[[Mapping[str, float]], bool]:
        left = self.operand()
        tok = self.take()
        if tok.kind != "op":
            raise self.fail(tok, "a comparison (< <= > >= == !=)")
        right = self.operand()
        op = _OPS[tok.text]
        return lambda v: op(left(v), right(v))

    def operand(self) -> Callable[[Mapping[str, float]], float]:
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise KeepError(f"number {tok.text!r} at position {tok.pos} is not finite")
            return lambda v: value
        if tok.kind == "name" and tok.text not in _KEYWORDS:
            if tok.text not in self.known:
                raise KeepError(f"unknown metric {tok.text!r} at position {tok.pos}; known metrics: "
                                + ", ".join(self.known))
            self.names.add(tok.text)
            name = tok.text
            return lambda v: float(v[name])
        raise self.fail(tok, "a metric name or a number")
