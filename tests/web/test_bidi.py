"""app/web/bidi.py: untrusted text with bidi controls is balanced and isolated in page text,
left exactly as stored in attributes and text areas, and other text is printed unchanged."""

from __future__ import annotations

from jinja2 import DictLoader, Environment

from app.web.bidi import BidiIsolation, balance_bidi, isolate_bidi

RLO, RLI, PDF, FSI, PDI = "\u202e", "\u2067", "\u202c", "\u2068", "\u2069"


def test_balance_closes_openers_and_drops_stray_closers() -> None:
    assert balance_bidi(f"{PDI}{RLO}evil{RLI}x") == f"{RLO}evil{RLI}x{PDI}{PDF}"
    assert balance_bidi(f"a{PDF}b") == "ab"
    # A PDI closes the override opened inside its isolate.
    assert balance_bidi(f"{RLI}{RLO}x{PDI}y") == f"{RLI}{RLO}x{PDI}y"


def test_isolate_wraps_only_text_with_controls() -> None:
    assert isolate_bidi(f"{RLO}evil") == f"{FSI}{RLO}evil{PDF}{PDI}"
    assert isolate_bidi("plain") == "plain"
    assert isolate_bidi(7) == 7


def test_templates_isolate_page_text_but_not_attributes_or_text_areas() -> None:
    env = Environment(
        autoescape=True,
        extensions=[BidiIsolation],
        loader=DictLoader(
            {
                "page": (
                    "<title>{{ name }}</title><p title='{{ name }}'>Hello, {{ name }}!</p>"
                    '<input value="{{ name }}"><textarea>{{ name }}</textarea>'
                    "<option>{{- name -}}</option>"
                )
            }
        ),
    )
    html = env.get_template("page").render(name=f"{RLO}evil")
    wrapped = f"{FSI}{RLO}evil{PDF}{PDI}"
    assert html == (
        f"<title>{wrapped}</title><p title='{RLO}evil'>Hello, {wrapped}!</p>"
        f'<input value="{RLO}evil"><textarea>{RLO}evil</textarea>'
        f"<option>{wrapped}</option>"
    )
