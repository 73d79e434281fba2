"""Each figure goes with the passage that holds its caption: a pipeline step after splitting, because a
page's figures are known before its text is cut into passages."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from llama_index.core.schema import BaseNode, TransformComponent

from coe.ingest.figures import load


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", (text or "").lower())


def _home(caption: str, texts: list[str]) -> int:
    """The passage whose text contains the caption (its start, then a shorter start), else the first."""
    key = _key(caption)
    for length in (60, 24):
        if len(key) >= 6:
            for i, text in enumerate(texts):
                if key[:length] in text:
                    return i
    return 0


class FigureLinker(TransformComponent):
    """Sets ``chunk`` (the passage's place in its page/slide/section) and keeps in ``figures`` only the
    figures linked to that passage, each with the passage's ``passage_id``."""

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        groups: dict[str, list[BaseNode]] = {}
        for node in nodes:
            groups.setdefault(node.ref_doc_id or node.node_id, []).append(node)
        for group in groups.values():
            figures = load(group[0].metadata.get("figures"))
            texts = [_key(n.get_content()) for n in group]
            linked: list[list[dict]] = [[] for _ in group]
            for fig in figures:
                linked[_home(fig.get("caption", ""), texts)].append(fig)
            for i, node in enumerate(group):
                node.metadata["chunk"] = i
                node.metadata["figures"] = json.dumps(
                    [{**f, "passage_id": node.node_id} for f in linked[i]], ensure_ascii=False
                )
                node.metadata["figure_count"] = len(linked[i])
                for key in ("chunk", "figure_count"):
                    if key not in node.excluded_embed_metadata_keys:
                        node.excluded_embed_metadata_keys.append(key)
                        node.excluded_llm_metadata_keys.append(key)
        return nodes
