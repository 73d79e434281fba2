"""Item text shown through ``st.markdown`` as the text it is: a model's (or an imported bank's) words must
not become a link, a remote image the browser fetches, raw HTML or a formula."""

from __future__ import annotations

import re

# CommonMark lets any ASCII punctuation be escaped with a backslash; "$" also starts Streamlit's LaTeX
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:&\"'=^])")


def literal(text: object) -> str:
    """``text`` escaped for Markdown; line breaks are kept as line breaks."""
    return "  \n".join(_SPECIAL.sub(r"\\\1", line) for line in str(text if text is not None else "").split("\n"))
