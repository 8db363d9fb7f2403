"""Markdown for untrusted text (prompts, responses, guidelines, descriptions) as inert HTML.

Two layers, so that a mistake in one is caught by the other: markdown-it escapes raw HTML and
refuses dangerous links, then nh3 keeps only an allow-list of tags, attributes and URL schemes.
Whatever the text says, the result has no scripts, no event handlers, no style and no htmx
attributes. Pages must still put it inside an `hx-disable` container (see
templates/partials/untrusted.html), so that even an allowed tag can never make htmx send a request.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markupsafe import Markup

ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        # markdown-it writes ~~strikethrough~~ as <s>.
        *("p", "br", "hr", "em", "strong", "s", "del", "code", "pre", "blockquote"),
        *("ul", "ol", "li", "a"),
        *("h1", "h2", "h3", "h4", "h5", "h6"),
        *("table", "thead", "tbody", "tr", "th", "td"),
    }
)
# Only what markdown-it itself produces; everything else (on*, style, id, hx-*, data-*) is dropped.
ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "a": {"href", "title"},
    "code": {"class"},
    "ol": {"start"},
}
ALIGNMENTS: set[str] = {"left", "center", "right"}
URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"

_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")
_TEXT_ALIGN = re.compile(r"text-align:(left|center|right)")


def _table_alignment_as_attribute(state: StateCore) -> None:
    """markdown-it aligns table cells with style="text-align:…", which the CSP would block."""
    for token in state.tokens:
        if token.type not in ("th_open", "td_open"):
            continue
        style = token.attrs.pop("style", None)
        found = _TEXT_ALIGN.fullmatch(str(style)) if style is not None else None
        if found:
            token.attrs["align"] = found.group(1)


def _build_parser(*, breaks: bool) -> MarkdownIt:
    # html=False shows raw HTML as text; linkify stays off so bare text never becomes a link.
    parser = MarkdownIt(
        "commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": breaks}
    )
    parser.enable(["table", "strikethrough"])
    # Images would load from anywhere the text names (a tracking pixel in model output); without
    # the image rule, ![alt](url) is shown as "!" and a plain link the reader can choose to follow.
    parser.disable("image")
    parser.core.ruler.push("table_alignment_as_attribute", _table_alignment_as_attribute)
    return parser


_parsers = {False: _build_parser(breaks=False), True: _build_parser(breaks=True)}


def _keep_attribute(tag: str, attribute: str, value: str) -> str | None:
    # The allow-lists above already hold no data-* or hx-*; this check keeps it so if they grow.
    if attribute.startswith(("hx-", "data-")):
        return None
    if tag == "code" and attribute == "class":
        return value if _LANGUAGE_CLASS.fullmatch(value) else None
    return value


def _without_lone_surrogates(text: str) -> str:
    """Lone surrogates (possible in a Python str, never in UTF-8) become U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def clean_html(html: str) -> str:
    """The second layer on its own: HTML reduced to the allow-lists above."""
    return nh3.clean(
        _without_lone_surrogates(html),
        tags=set(ALLOWED_TAGS),
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        tag_attribute_values={"th": {"align": ALIGNMENTS}, "td": {"align": ALIGNMENTS}},
        attribute_filter=_keep_attribute,
        url_schemes=set(URL_SCHEMES),
        # A relative link would point into Smiley itself, which untrusted text has no reason to.
        url_relative="deny",
        link_rel=LINK_REL,
        strip_comments=True,
    )


def render_markdown(text: str, *, breaks: bool = False) -> Markup:
    """Untrusted markdown as sanitized HTML that is safe to insert into a page.

    breaks=False is CommonMark (a single newline joins lines, as in a guideline written as a
    document); breaks=True keeps every line break, for chat turns, where a reader judging the
    text must see the lines the model or labeler wrote.
    """
    html = _parsers[breaks].render(_without_lone_surrogates(text))
    return Markup(clean_html(html))


def markdown_filter(text: str | None, breaks: bool = False) -> Markup:
    """The Jinja filter: `{{ text|markdown }}` or `{{ text|markdown(breaks=true) }}`.

    None renders as nothing.
    """
    return render_markdown(text, breaks=breaks) if text else Markup("")
