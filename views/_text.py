"""Text from datasets, runs and people made safe to show (Markdown-inert, HTML-escaped), and durations said the way
a person says them."""

from __future__ import annotations

import html
import re

_MARKDOWN_SPECIALS = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation mark: CommonMark escapes them all
_OUTSIDE_ENTITIES = re.compile(r"([!-\"$-%'-/:<-@\[-`{-~])")  # the same, minus & # ; that HTML entities are made of


def escape_md(text: object) -> str:
    """Text from a dataset, a run or a user, made inert inside Markdown (st.markdown, st.error, captions…):
    no HTML, no links or images, no emphasis, no :directives:, no $maths$ — it shows exactly as written."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", str(text)).replace("\n", "  \n")


def html_text(text: object) -> str:
    """The same text inside HTML that the page builds itself (colour chips): HTML-escaped, then Markdown-inert."""
    return _OUTSIDE_ENTITIES.sub(r"\\\1", html.escape(str(text), quote=True))


def plot_text(text: object) -> str:
    """Text for plotly labels, which understand a little HTML (<b>, <a href>, <br>): escaped so it is shown as is."""
    return html.escape(str(text), quote=True)


def error_text(exc: Exception) -> str:
    """A SegcoreError's message for st.error: one Markdown bullet per file at fault, each line inert."""
    first, *rest = str(exc).split("\n  • ")
    return escape_md(first) + "".join(f"\n- {escape_md(line)}" for line in rest)


def duration(seconds: float) -> str:
    """'45 s', '3 min', '1 h 5 min': rounded the way a person says it."""
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def teacher_markdown(text: str) -> str:
    """A teacher's Markdown (lesson instructions) as formatting only: no HTML (Streamlit's default), and links and
    images reduced to their text, so a student's browser never fetches anything from elsewhere."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", str(text))
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"<[^>]*>", "", text)
