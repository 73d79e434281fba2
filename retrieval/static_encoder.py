"""The default query encoder's table, fitted to MiniLM on ScienceQA's train and val fields.

Always those two splits, whatever bank an index build is asked for: the table is shared by every index in
the models folder, so building an index over other splits (or a test's small dataset folder) must not refit
it under the indexes that already use it."""

from __future__ import annotations

import time
from collections.abc import Callable

from .index import FIELDS, default_bank, field_text

SPLITS = ("train", "val")
# Below this many texts a fit would follow a handful of sentences (a test's dataset folder, a partial copy):
# such a folder gets an error saying how to fit the table, not a table fitted to it.
MIN_TEXTS = 2000


def fit_texts(bank: list) -> list[str]:
    """What retrieval encodes, in the bank's words: each field, and the question query of an item whose
    question is to be written (its material, then its answer: ``ExemplarRetriever.contextualize``)."""
    texts = [field_text(ex, f) for ex in bank for f in FIELDS]
    return texts + [f"{ex.context} {ex.answer}" for ex in bank if ex.context.strip()]


def fit_default_table(
    data: str | None = None, *, force: bool = False, progress: Callable[[str], None] | None = None
) -> dict:
    """Fit ``minilm-static``'s table unless it is already fitted to these texts; returns the fit's record
    with ``status`` ("fitted" or "up to date"), ``folder`` and ``seconds``."""
    from coe.dataset_loaders import ScienceQA
    from coe.plugins.embed.static_tokens import StaticTokenEmbedder, table_dir

    from coe.errors import ConfigError

    t0 = time.perf_counter()
    bank = default_bank(ScienceQA(data), SPLITS)
    texts = fit_texts(bank)
    distinct = len({t for t in texts if t.strip()})
    if distinct < MIN_TEXTS:
        raise ConfigError(
            f"the static encoder is fitted on ScienceQA's train and val fields, and this folder has only "
            f"{distinct} distinct texts (at least {MIN_TEXTS}); run `coe models fit-encoder --data` with the "
            "full ScienceQA folder"
        )
    info = StaticTokenEmbedder.fit_to(texts, force=force, progress=progress)
    return {**info, "folder": str(table_dir()), "seconds": time.perf_counter() - t0}


def ensure_table(data: str | None, progress: Callable[[str], None] | None = None) -> dict | None:
    """Fit the table if the configured text embedder is ``minilm-static`` and its table is missing (an
    index build's first step); None when there is nothing to do."""
    from coe.plugins.embed.static_tokens import TABLE_FILE, StaticTokenEmbedder, table_dir
    from coe.plugins.registry import configured_name, load

    if load("text_embedder", configured_name("text_embedder") or "") is not StaticTokenEmbedder:
        return None
    if (table_dir() / TABLE_FILE).is_file():
        return None
    return fit_default_table(data, progress=progress)
