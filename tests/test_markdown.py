"""Untrusted markdown renders inert: exact HTML for hostile and ordinary inputs."""

from __future__ import annotations

import pytest
from jinja2 import Environment
from markupsafe import Markup

from app.web.markdown import clean_html, markdown_filter, render_markdown
from app.web.rendering import templates

REL = 'rel="noopener noreferrer nofollow"'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"),
        ("<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"),
        ("[x](javascript:alert(1))", "<p>[x](javascript:alert(1))</p>\n"),
        ("[x](JaVaScRiPt:alert(1))", "<p>[x](JaVaScRiPt:alert(1))</p>\n"),
        ("[x](java&#115;cript:alert(1))", "<p>[x](javascript:alert(1))</p>\n"),
        ("[x](data:text/html,hi)", "<p>[x](data:text/html,hi)</p>\n"),
        (
            '<a href="javascript:alert(1)">y</a>',
            '<p>&lt;a href="javascript:alert(1)"&gt;y&lt;/a&gt;</p>\n',
        ),
        (
            '<div hx-get="/logout" hx-trigger="load">x</div>',
            '<p>&lt;div hx-get="/logout" hx-trigger="load"&gt;x&lt;/div&gt;</p>\n',
        ),
        (
            '<p data-hx-post="/logout" data-hx-trigger="load">x</p>',
            '<p>&lt;p data-hx-post="/logout" data-hx-trigger="load"&gt;x&lt;/p&gt;</p>\n',
        ),
        ("<!-- hidden -->", "<p>&lt;!-- hidden --&gt;</p>\n"),
    ],
)
def test_hostile_markup_is_shown_as_text(text: str, expected: str) -> None:
    assert render_markdown(text) == Markup(expected)


def test_the_javascript_link_text_stays_but_no_href_is_made() -> None:
    rendered = render_markdown("see [click](javascript:window.__pwned=1) now")

    assert rendered == "<p>see [click](javascript:window.__pwned=1) now</p>\n"
    assert "<a" not in rendered


def test_an_http_link_keeps_its_url_and_gets_a_safe_rel() -> None:
    rendered = render_markdown('[docs](https://example.com/a?b=1&c=2 "Title")')

    assert rendered == (
        f'<p><a href="https://example.com/a?b=1&amp;c=2" title="Title" {REL}>docs</a></p>\n'
    )


def test_mailto_and_autolinks_are_links() -> None:
    assert render_markdown("<mailto:a@example.com> <http://example.com>") == (
        f'<p><a href="mailto:a@example.com" {REL}>mailto:a@example.com</a> '
        f'<a href="http://example.com" {REL}>http://example.com</a></p>\n'
    )


@pytest.mark.parametrize("url", ["/logout", "#top", "//evil.example/x", "ftp://example.com/f"])
def test_relative_and_other_scheme_links_lose_their_href(url: str) -> None:
    assert render_markdown(f"[x]({url})") == f"<p><a {REL}>x</a></p>\n"


def test_bare_urls_are_not_linked() -> None:
    assert render_markdown("go to https://example.com") == "<p>go to https://example.com</p>\n"


def test_images_become_links_and_load_nothing() -> None:
    assert render_markdown("![pixel](https://tracker.example/p.gif)") == (
        f'<p>!<a href="https://tracker.example/p.gif" {REL}>pixel</a></p>\n'
    )


def test_a_fenced_code_block_keeps_whitespace_and_escapes() -> None:
    text = "```python\nif a < b:\n    x  =  '<b>'\n\n\ty = 1\n```"

    assert render_markdown(text) == (
        '<pre><code class="language-python">if a &lt; b:\n'
        "    x  =  '&lt;b&gt;'\n\n\ty = 1\n</code></pre>\n"
    )


def test_a_fence_info_string_cannot_smuggle_attributes() -> None:
    assert render_markdown('```" onload="alert(1)\nhi\n```') == "<pre><code>hi\n</code></pre>\n"
    assert render_markdown("```py evil\nhi\n```") == (
        '<pre><code class="language-py">hi\n</code></pre>\n'
    )


def test_ordinary_markdown_renders() -> None:
    text = (
        "# Title\n\nSome *em*, **strong**, ~~gone~~ and `code`.\n\n"
        "> quoted\n\n3. three\n4. four\n\n- a\n- b\n\n---\n"
    )

    assert render_markdown(text) == (
        "<h1>Title</h1>\n<p>Some <em>em</em>, <strong>strong</strong>, <s>gone</s> and "
        "<code>code</code>.</p>\n<blockquote>\n<p>quoted</p>\n</blockquote>\n"
        '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>\n'
        "<ul>\n<li>a</li>\n<li>b</li>\n</ul>\n<hr>\n"
    )


def test_table_alignment_is_an_attribute_not_a_style() -> None:
    assert render_markdown("| a | b | c |\n|:-|:-:|--:|\n| 1 | 2 | 3 |") == (
        '<table>\n<thead>\n<tr>\n<th align="left">a</th>\n<th align="center">b</th>\n'
        '<th align="right">c</th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td align="left">1</td>\n'
        '<td align="center">2</td>\n<td align="right">3</td>\n</tr>\n</tbody>\n</table>\n'
    )


def test_line_breaks_follow_commonmark_unless_asked_to_keep_them() -> None:
    assert render_markdown("one\ntwo") == "<p>one\ntwo</p>\n"
    assert render_markdown("one\ntwo", breaks=True) == "<p>one<br>\ntwo</p>\n"


def test_nul_bytes_and_lone_surrogates_become_replacement_characters() -> None:
    assert render_markdown("a\x00b\ud800c\udfffd") == "<p>a\ufffdb\ufffdc\ufffdd</p>\n"
    assert render_markdown("\ud83d\ude00") == "<p>\U0001f600</p>\n"
    assert clean_html("<p>\ud800</p>") == "<p>\ufffd</p>"


def test_empty_text_renders_nothing() -> None:
    assert render_markdown("") == ""
    assert markdown_filter(None) == ""
    assert markdown_filter("") == ""


# The second layer on its own, as if markdown-it ever let HTML through.
@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<script>alert(1)</script>after", "after"),
        ("<style>body{}</style>after", "after"),
        ('<img src="x" onerror="alert(1)">', ""),
        ('<a href="javascript:alert(1)">y</a>', f"<a {REL}>y</a>"),
        ('<a href=" JaVaScRiPt:alert(1)">y</a>', f"<a {REL}>y</a>"),
        (
            '<a href="https://ok.example" target="_top" id="x">y</a>',
            f'<a href="https://ok.example" {REL}>y</a>',
        ),
        ('<div hx-get="/logout" hx-trigger="load">x</div>', "x"),
        ('<p data-hx-post="/logout" data-hx-trigger="load">x</p>', "<p>x</p>"),
        (
            '<p hx-on:click="alert(1)" style="color:red" onclick="alert(1)" class="c">x</p>',
            "<p>x</p>",
        ),
        ('<code class="language-py evil">a</code>', "<code>a</code>"),
        ('<code class="language-py" data-x="1">a</code>', '<code class="language-py">a</code>'),
        ('<td align="justify">q</td>', "q"),
        ('<form action="/logout"><button>b</button></form>', "b"),
        ('<iframe src="/logout"></iframe>i', "i"),
        ('<svg><a xlink:href="javascript:alert(1)">s</a></svg>', ""),
        ("<!-- c -->k", "k"),
    ],
)
def test_the_sanitizer_keeps_only_the_allow_list(html: str, expected: str) -> None:
    assert clean_html(html) == expected


def test_the_filter_is_registered_and_its_output_is_not_escaped_again() -> None:
    env: Environment = templates.env
    template = env.from_string("{{ text|markdown }}|{{ text|markdown(breaks=true) }}")

    assert (
        template.render(text="*a*\n<b>")
        == "<p><em>a</em>\n&lt;b&gt;</p>\n|<p><em>a</em><br>\n&lt;b&gt;</p>\n"
    )


def test_the_untrusted_macros_wrap_content_in_hx_disable() -> None:
    template = templates.env.from_string(
        '{% from "partials/untrusted.html" import conversation, markdown_box %}'
        '{{ markdown_box(text, "box") }}{{ conversation(messages) }}'
    )

    rendered = template.render(
        text='<div hx-get="/logout">x</div>',
        messages=[
            {"role": "system", "content": "Be *brief*."},
            {"role": "user", "content": "hi\nthere"},
            {"role": "assistant", "content": "<script>x()</script>"},
            {"role": 'tool"<x>', "content": "ok"},
        ],
    )

    assert rendered == (
        '<div class="markdown untrusted" hx-disable data-testid="box">\n'
        '<p>&lt;div hx-get="/logout"&gt;x&lt;/div&gt;</p>\n\n</div>'
        '<div class="conversation untrusted" hx-disable data-testid="conversation">\n'
        '  <section class="turn turn-system" data-testid="turn" data-role="system"'
        ' aria-label="System">\n    <p class="turn-role">System</p>\n'
        '    <div class="markdown">\n<p>Be <em>brief</em>.</p>\n\n    </div>\n  </section>\n'
        '  <section class="turn turn-user" data-testid="turn" data-role="user"'
        ' aria-label="User">\n    <p class="turn-role">User</p>\n'
        '    <div class="markdown">\n<p>hi<br>\nthere</p>\n\n    </div>\n  </section>\n'
        '  <section class="turn turn-assistant" data-testid="turn" data-role="assistant"'
        ' aria-label="Assistant">\n    <p class="turn-role">Assistant</p>\n'
        '    <div class="markdown">\n<p>&lt;script&gt;x()&lt;/script&gt;</p>\n\n'
        "    </div>\n  </section>\n"
        '  <section class="turn turn-other" data-testid="turn" data-role="tool&#34;&lt;x&gt;"'
        ' aria-label="tool&#34;&lt;x&gt;">\n    <p class="turn-role">tool&#34;&lt;x&gt;</p>\n'
        '    <div class="markdown">\n<p>ok</p>\n\n    </div>\n  </section>\n</div>'
    )
