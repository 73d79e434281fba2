"""The benchmark's inputs: coe imported (installed or from this checkout), the Qwen2 tokenizer, ScienceQA
test items with their images, and each generation stage's request as coe's agents build it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_COE_HOME = Path(os.environ.get("COE_HOME") or Path.home() / ".cache" / "coe")
DEFAULT_GGUF = Path(os.environ.get("COE_MODELS_DIR") or _COE_HOME / "models") / "qwen2.5-coder-0.5b-instruct-q4.gguf"
ASSETS = REPO / "bench" / "assets"


def import_coe():
    """Import coe installed, or straight from this checkout, mapping ``coe.*`` to folders as pyproject's
    ``package-dir`` does (``coe.dataset_loaders`` lives in ``dataset_loaders/``)."""
    try:
        import coe.agents.generation  # noqa: F401

        return
    except ImportError:
        pass
    import importlib.util
    import tomllib

    for name in [m for m in sys.modules if m == "coe" or m.startswith("coe.")]:
        del sys.modules[name]
    with (REPO / "pyproject.toml").open("rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]

    class CheckoutFinder:  # packages load on first import, as installed ones do (the GPU image lacks langchain)
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname not in mapping:
                return None
            folder = REPO / mapping[fullname]
            return importlib.util.spec_from_file_location(
                fullname, folder / "__init__.py", submodule_search_locations=[str(folder)]
            )

    sys.meta_path.insert(0, CheckoutFinder)
    import coe.agents.generation  # noqa: F401


def load_tokenizer(spec: str | None, log):
    from coe.plugins.llm.vl_random import load_qwen2_tokenizer

    candidates = [Path(spec)] if spec else [DEFAULT_GGUF, ASSETS / "tokenizer"]
    for path in candidates:
        if path.exists():
            t0 = time.perf_counter()
            tok = load_qwen2_tokenizer(path)
            log(f"tokenizer: {path} ({time.perf_counter() - t0:.1f}s, {len(tok)} tokens)")
            return tok, str(path)
    log("tokenizer: no GGUF or saved Qwen2 tokenizer found; using a word-level stand-in (token counts differ)")
    return standin_tokenizer(), "word-level stand-in"


def standin_tokenizer():
    """A word-level tokenizer with the Qwen2-VL special tokens at their real ids (last resort only)."""
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from coe.agents.contracts import DistractorsReply, NotesReply, QuestionReply, RationaleReply
    from coe.agents.prompting import PROMPT_DIR
    from coe.plugins.llm.vl_random import QWEN2_VL_CHAT_TEMPLATE, VL_SPECIAL_TOKENS

    # the prompt files and the reply-format lines the step contracts fill into them
    texts = [f.read_text() for f in PROMPT_DIR.glob("*.txt")]
    texts += [
        c.reply_format(mode)
        for c in (QuestionReply, RationaleReply, DistractorsReply, NotesReply)
        for mode in ("json", "coe")
    ]
    words = set()
    for text in texts:
        words.update(re.findall(r"\w+|[^\w\s]", text))
    vocab = {w: i for i, w in enumerate(sorted(words) + [chr(c) for c in range(32, 127) if chr(c) not in words])}
    vocab["[UNK]"] = len(vocab)
    specials = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
    specials.update({t: 151646 + i for i, t in enumerate(VL_SPECIAL_TOKENS)})
    vocab.update(specials)
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="<|endoftext|>", eos_token="<|im_end|>"
    )
    tok.add_special_tokens({"additional_special_tokens": list(specials)})
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tok


def load_items(data: str | None, n: int, image_size: int, k_exemplars: int, log):
    """(ItemInput, exemplars) for n ScienceQA test image items; images resized to image_size² and saved
    as PNG files (the graph reads images by path)."""
    import tempfile

    from PIL import Image

    from coe.agents.generation import ItemInput
    from coe.dataset_loaders import ScienceQA
    from coe.errors import CoeError
    from coe.plugins.llm.protocol import ImageRef
    from coe.retrieval.exemplars import Exemplar

    roots = [data] if data else [None, str(ASSETS / "scienceqa"), str(REPO / "tests/fixtures/mini_scienceqa")]
    for root in roots:
        try:
            ds = ScienceQA(root)
            tests = [p for p in ds.split("test") if p.image_path and Path(p.image_path).is_file()]
            pool = [p for p in ds.split("train") if p.rationale][:400] or [p for p in ds if p.split != "test"]
        except (CoeError, OSError) as exc:
            log(f"data: {root or 'default ScienceQA folder'} unusable ({exc})")
            continue
        if tests:
            break
    else:
        raise SystemExit("no ScienceQA test items with images found; pass --data")
    log(f"data: {ds.root} ({len(tests)} test image items, using {n}, cycled if fewer)")
    folder = Path(tempfile.mkdtemp(prefix="coe-bench-images-"))
    items = []
    for i in range(n):
        p = tests[i % len(tests)]
        path = folder / f"{i}.png"
        Image.open(p.image_path).convert("RGB").resize((image_size, image_size), Image.BICUBIC).save(path)
        same = [q for q in pool if q.subject == p.subject] or pool
        exemplars = [Exemplar.from_problem(q) for q in same[i % 7 : i % 7 + k_exemplars]]
        items.append(
            (ItemInput(answer=p.answer, context=p.hint, image_text=p.caption, images=[ImageRef(path=path)]), exemplars)
        )
    return items


# --- the three stages, as coe's agents build them -----------------------------------------------------


def stage_request(stage: str, llm, item, exemplars, prev: dict, tokens: dict):
    from coe.agents.generation import distractors_call, question_call, rationale_call

    if stage == "question":
        call = question_call(llm, item, exemplars, max_tokens=tokens["question"])
    elif stage == "rationale":
        call = rationale_call(
            llm, item, prev.get("question", "")[:200] or "?", exemplars, max_tokens=tokens["rationale"]
        )
    else:
        call = distractors_call(
            llm,
            item,
            prev.get("question", "")[:200] or "?",
            prev.get("rationale", "")[:400],
            exemplars,
            3,
            max_tokens=tokens["distractors"],
        )
    return call.request()


STAGES = ("question", "rationale", "distractors")
