"""Prompt templates (versioned text files beside the agents) and injection-safe rendering of material.

Every stage's prompt starts with the same system text and the same block of exemplars and material, and
differs only in its closing task. A backend with a prompt cache (llama.cpp) then evaluates the long
shared prefix once per item instead of once per stage."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from coe.plugins.llm.protocol import ImageRef, Message
from coe.text import one_line

PROMPT_DIR = Path(__file__).parent / "prompts"
PROMPT_VERSION = "v1"
_TAG = re.compile(r"</?\s*[a-zA-Z_][\w-]*[^<>]*>")


@cache
def load_prompt(name: str, version: str = PROMPT_VERSION) -> str:
    return (PROMPT_DIR / f"{name}.{version}.txt").read_text(encoding="utf-8").strip()


def defang(text: str) -> str:
    """Neutralise anything that looks like a tag, so data cannot close its fence or open a new one."""
    return _TAG.sub(lambda m: m.group(0).replace("<", "‹").replace(">", "›"), text)


def data_block(tag: str, text: str, max_chars: int = 2000) -> str:
    safe = defang(one_line(text))[:max_chars] or "(none)"
    return f"<{tag}>\n{safe}\n</{tag}>"


def material_block(context: str, image_text: str) -> str:
    # Bounded so the shared prompt prefix stays short: prompt evaluation dominates CPU time per item.
    return "\n".join([data_block("context", context, 1200), data_block("image_text", image_text, 800)])


def numbered(options: list[str]) -> str:
    return " ".join(f"({i}) {o}" for i, o in enumerate(options, 1))


def _clip(text: str, n: int) -> str:
    text = one_line(text)
    return text if len(text) <= n else text[:n].rsplit(" ", 1)[0] + " …"


def exemplar_block(exemplars: list, *, context_chars: int = 180, rationale_chars: int = 260) -> str:
    """Each exemplar in full (context, question, answer, rationale, distractors): every stage reads the
    part it needs, and the block is identical across stages."""
    if not exemplars:
        return "(no example items)"
    out = []
    for n, ex in enumerate(exemplars, 1):
        lines = [
            f"Context: {_clip(ex.context, context_chars) or '(none)'}",
            f"Question: {ex.question}",
            f"Answer: {ex.answer}",
            f"Rationale: {_clip(ex.rationale, rationale_chars) or '(none)'}",
            f"Distractors: {numbered(ex.distractors) or '(none)'}",
        ]
        out.append(f"<example {n}>\n" + defang("\n".join(lines)) + f"\n</example {n}>")
    return "\n".join(out)


def render(
    stage: str,
    mode: str,
    *,
    exemplars: list,
    context: str,
    image_text: str,
    answer: str,
    reply_format: str,
    images: list[ImageRef] | None = None,
    **fields: str,
) -> tuple[list[Message], str]:
    """Messages for one stage and the id of the prompt version used; ``reply_format`` (the step's contract
    says it, ``contracts.Reply.reply_format``) fills the template's slot of that name."""
    version = PROMPT_VERSION if mode == "json" else f"coe-{PROMPT_VERSION}"
    shared = load_prompt("shared").format(
        exemplars=exemplar_block(exemplars), material=material_block(context, image_text), answer=defang(answer)
    )
    task = load_prompt(stage, version).format(
        answer=defang(answer), reply_format=reply_format, **{k: defang(v) for k, v in fields.items()}
    )
    messages = [
        Message(role="system", content=load_prompt("system")),
        Message(role="user", content=f"{shared}\n\n{task}", images=images or []),
    ]
    return messages, f"{stage}.{version}"
