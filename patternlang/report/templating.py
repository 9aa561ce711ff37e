"""Every HTML page patternlang writes comes from a jinja2 template in `patternlang/templates/`,
rendered with autoescaping on: a string from a document, a prompt or a pattern is text wherever
it lands (element content or attribute value), whatever it holds. Data a page's script reads is
embedded with the `tojson` filter, which writes `<`, `>`, `&` and `'` as `\\u003c`...: no string
can close the `<script>` element it sits in. Style sheets and scripts are constants of the code
(`trusted`); nothing from data is ever marked trusted.

>>> render_string("<p title='{{ t }}'>{{ t }}</p>", t="\\"><img src=x onerror=alert(1)>")
"<p title='&#34;&gt;&lt;img src=x onerror=alert(1)&gt;'>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</p>"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"

_ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_ENV.filters["url"] = lambda value: quote(str(value), safe="/")  # a path from data, percent-encoded
_ENV.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}


def render(template: str, /, **context: Any) -> str:
    """The template (a path under `patternlang/templates/`) rendered with `context`."""
    return _ENV.get_template(template).render(**context)


def render_string(source: str, /, **context: Any) -> str:
    """A template given as text, rendered like the files (autoescaped)."""
    return _ENV.from_string(source).render(**context)


def trusted(text: str) -> Markup:
    """A constant of the code (a style sheet, a script) to put in a page as it is. Never data."""
    return Markup(text)
