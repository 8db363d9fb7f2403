"""Bidirectional-text isolation for untrusted text shown in pages.

A name or prompt carrying an unterminated U+202E (right-to-left override) or U+2067 reverses
whatever the page prints after it on the same line ("Hello, live" for "Hello, evil"). Every
`{{ … }}` that prints into page text (not into an attribute, a <textarea> or a <script>) goes
through `isolate_bidi` (`BidiIsolation`, a Jinja preprocessor over every template): text holding
bidi controls is balanced and wrapped in FSI … PDI, which isolates it in plain text as <bdi>
does in markup, and so also works in <title> and <option>, where no element can. Text without
such controls is printed unchanged. Blocks of untrusted markdown are isolated by CSS instead
(`.untrusted` in static/smiley.css).
"""

from __future__ import annotations

import re
from typing import Any

from jinja2.ext import Extension
from markupsafe import Markup

FSI, PDI, PDF = "\u2068", "\u2069", "\u202c"
EMBEDDINGS = frozenset("\u202a\u202b\u202d\u202e")  # LRE, RLE, LRO, RLO: closed by PDF
ISOLATES = frozenset("\u2066\u2067\u2068")  # LRI, RLI, FSI: closed by PDI
CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")


def balance_bidi(text: str) -> str:
    """`text` with every opener closed at its end and every closer without an opener dropped,
    so nothing in it can reach past it (or close an isolate around it)."""
    out: list[str] = []
    open_: list[str] = []  # the closer each open opener needs, innermost last
    for char in text:
        if char in EMBEDDINGS:
            open_.append(PDF)
        elif char in ISOLATES:
            open_.append(PDI)
        elif char == PDF:
            if not open_ or open_[-1] != PDF:
                continue
            open_.pop()
        elif char == PDI:
            if PDI not in open_:
                continue
            # A PDI also closes the embeddings opened since its isolate (UAX #9, X6a).
            while open_.pop() != PDI:
                pass
        out.append(char)
    return "".join(out) + "".join(reversed(open_))


def isolate_bidi(value: Any) -> Any:
    """Plain text holding bidi controls, balanced and wrapped in FSI … PDI; anything else as is
    (numbers, markup a macro or filter made, text without controls)."""
    if isinstance(value, Markup) or not isinstance(value, str) or not CONTROLS.search(value):
        return value
    return FSI + balance_bidi(value) + PDI


# A template's tokens, in order: Jinja tags, comments and expressions, HTML comments, tag starts
# and ends, and quotes (which matter only inside a tag).
_TOKENS = re.compile(
    r"(?P<expr>\{\{(?P<ltrim>[-+]?)(?P<body>.*?)(?P<rtrim>[-+]?)\}\})"
    r"|(?P<jinja>\{%.*?%\}|\{#.*?#\})"
    r"|(?P<comment><!--.*?-->)"
    r"|(?P<open><(?P<close>/?)(?P<name>[a-zA-Z][a-zA-Z0-9-]*))"
    r"|(?P<end>>)"
    r"|(?P<quote>[\"'])",
    re.DOTALL,
)
# Elements whose content is not markup: expressions in them are left alone (a textarea's value
# must come back exactly as stored) ...
_VERBATIM = frozenset({"textarea", "script", "style"})


class BidiIsolation(Extension):
    """Rewrites every `{{ expr }}` printed into page text as `{{ (expr)|isolate_bidi }}`."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.filters["isolate_bidi"] = isolate_bidi

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        out: list[str] = []
        position = 0
        in_tag = False
        quote = ""
        verbatim = ""  # the raw-text element we are inside, if any
        for match in _TOKENS.finditer(source):
            kind = match.lastgroup if match.group("expr") is None else "expr"
            if kind == "expr":
                if not in_tag and not verbatim:
                    out.append(source[position : match.start()])
                    out.append(
                        "{{"
                        + match.group("ltrim")
                        + " ("
                        + match.group("body").strip()
                        + ")|isolate_bidi "
                        + match.group("rtrim")
                        + "}}"
                    )
                    position = match.end()
                continue
            if match.group("jinja") or match.group("comment"):
                continue
            if in_tag:
                if match.group("quote"):
                    char = match.group("quote")
                    quote = "" if quote == char else (quote or char)
                elif match.group("end") and not quote:
                    in_tag = False
                continue
            if match.group("open"):
                tag = match.group("name").lower()
                if verbatim:
                    if match.group("close") and tag == verbatim:
                        verbatim = ""
                        in_tag = True
                    continue
                in_tag = True
                if not match.group("close") and tag in _VERBATIM:
                    verbatim = tag
        out.append(source[position:])
        return "".join(out)
