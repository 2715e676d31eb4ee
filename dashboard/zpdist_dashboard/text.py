"""Text that comes from a file (catalog metadata, file and column names, paths), made safe to show in the page."""

from __future__ import annotations

import html
import re

#: Markdown's punctuation (CommonMark's backslash-escapable characters other than HTML's ``& < > " '``).
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:=^])")
#: Control characters (a line break in a file name would end the Markdown paragraph).
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def escape(text: object) -> str:
    """``text`` as Markdown that shows it literally: no HTML element, link, emphasis, heading or formula can come
    out of it, whatever it holds.

    Examples
    --------
    >>> print(escape('<img src=x onerror="alert(1)">.parquet'))
    &lt;img src\\=x onerror\\=&quot;alert\\(1\\)&quot;&gt;\\.parquet
    """
    return html.escape(_MARKDOWN.sub(r"\\\1", _CONTROL.sub(" ", str(text))), quote=True)
