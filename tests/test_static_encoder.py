"""The static query encoder: its ridge fit (unit tier), and the plugin fitted to the real MiniLM (real parts)."""

from __future__ import annotations

import numpy as np
import pytest

from coe.plugins.embed.static_fit import fit_table


def _tokenizer(words: list[str]):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[0]))
    tok.pre_tokenizer = Whitespace()
    return tok


def _problem(seed: int = 3):
    """Texts over 60 words whose targets are means of a hidden table, and a start far from that table."""
    rng = np.random.default_rng(seed)
    words = ["[UNK]"] + [f"w{i}" for i in range(60)]
    hidden = rng.normal(size=(len(words), 16))
    texts, targets = [], []
    for _ in range(600):
        ids = rng.integers(1, 51, size=rng.integers(2, 9))  # w50..w59 never occur
        texts.append(" ".join(words[i] for i in ids))
        vec = hidden[ids].mean(axis=0)
        targets.append(vec / np.linalg.norm(vec))
    init = hidden + rng.normal(scale=2.0, size=hidden.shape)
    return _tokenizer(words), init.astype(np.float32), texts, np.array(targets)


def test_fit_moves_the_used_tokens_toward_the_targets_and_leaves_the_others():
    tok, init, texts, targets = _problem()
    fit = fit_table(tok, init, texts, targets, grid=(1e-4, 1e-1))
    assert fit.tokens_fitted == 50
    assert fit.init_holdout_cosine < 0.8
    assert max(fit.holdout_cosine.values()) > 0.99
    assert fit.holdout_cosine[f"{fit.l2:g}"] == max(fit.holdout_cosine.values())
    # the tokens no text uses keep MiniLM's single-token vectors, bit for bit
    np.testing.assert_array_equal(fit.table[51:], init[51:])
    assert not np.allclose(fit.table[1:51], init[1:51])


def test_the_same_inputs_give_the_same_table():
    tok, init, texts, targets = _problem(seed=5)
    a = fit_table(tok, init, texts, targets, grid=(1e-3,))
    b = fit_table(tok, init, texts, targets, grid=(1e-3,))
    assert a.table.tobytes() == b.table.tobytes()


@pytest.mark.real_parts
def test_the_plugin_fitted_to_minilm_reads_texts_closer_to_it(tmp_path):
    """Fitted on 400 val items' fields, it is closer to MiniLM on test questions than the unfitted table."""
    from coe.dataset_loaders import ScienceQA
    from coe.modelstore import is_pulled
    from coe.plugins.embed.minilm_onnx import MiniLMOnnxEmbedder
    from coe.plugins.embed.static_tokens import TABLE_FILE, StaticTokenEmbedder
    from coe.retrieval.index import FIELDS, default_bank, field_text

    if not is_pulled("minilm-l6-v2-int8"):
        pytest.fail("run `coe models pull minilm-l6-v2-int8` first (make test does)")
    try:
        dataset = ScienceQA()
    except Exception as exc:  # noqa: BLE001 - the message says which part is missing
        pytest.fail(f"needs the ScienceQA folder ($COE_SCIENCEQA_DIR or ../shared/data/scienceqa): {exc}")
    bank = default_bank(dataset, ("val",))[:400]
    texts = sorted({field_text(ex, f) for ex in bank for f in FIELDS if field_text(ex, f).strip()})
    held = sorted({field_text(ex, "question") for ex in default_bank(dataset, ("test",))[:60]} - set(texts))

    first = StaticTokenEmbedder.fit_to(texts, folder=tmp_path / "fit")
    assert first["status"] == "fitted"
    table_bytes = (tmp_path / "fit" / TABLE_FILE).read_bytes()
    again = StaticTokenEmbedder.fit_to(list(reversed(texts)), folder=tmp_path / "fit")
    assert again["status"] == "up to date"
    assert (tmp_path / "fit" / TABLE_FILE).read_bytes() == table_bytes

    static, teacher = StaticTokenEmbedder(tmp_path / "fit"), MiniLMOnnxEmbedder()
    unfitted = tmp_path / "unfitted"
    unfitted.mkdir()
    np.save(unfitted / TABLE_FILE, teacher.token_vectors())
    vecs = static.embed(held + [""])
    assert vecs.shape == (len(held) + 1, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    want = teacher.embed(held)
    before = float((StaticTokenEmbedder(unfitted).embed(held) * want).sum(axis=1).mean())
    assert float((vecs[:-1] * want).sum(axis=1).mean()) > before + 0.1

    # another table is another model: an index built with the first is not read with the second
    assert StaticTokenEmbedder(unfitted).model_id != static.model_id
