"""A static query encoder: one learned vector per MiniLM token, a text's vector the mean of its tokens'.

MiniLM costs 5 ms for a 4-token answer and 40 ms for a 128-token passage on 2 cores, more than a whole
retrieval may take. A table lookup and a mean cost tens of microseconds. The table is fitted to MiniLM
(``coe.plugins.embed.static_fit``): each row starts as MiniLM's vector of the token alone and is then moved, by
ridge regression, so that the mean over a text's tokens lands on MiniLM's vector of the whole text, over
the exemplar bank's own answers, questions and passages. It lives in ``<models>/minilm-l6-v2-static/``,
written by ``coe index build``; its model id names the table's digest, so an index built with another
table is rebuilt rather than compared against it."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np

from coe.errors import ConfigError

FIT_FORMAT = "coe-static-tokens-v1"
TABLE_DIR = "minilm-l6-v2-static"
TABLE_FILE = "tokens.npy"
INFO_FILE = "fit.json"


def table_dir() -> Path:
    from coe.paths import models_dir

    return models_dir() / TABLE_DIR


class StaticTokenEmbedder:
    name = "minilm-static"
    dim = 384
    # the embedder it imitates: similarity thresholds set on its cosines are read with it (``similarity_embedder``)
    teacher = "minilm-onnx"

    def __init__(self, table: str | os.PathLike | None = None, *, max_length: int = 128) -> None:
        from tokenizers import Tokenizer

        from coe.modelstore import resolve_embedder

        folder = Path(table) if table is not None else table_dir()
        path = folder / TABLE_FILE
        if not path.is_file():
            raise ConfigError(f"static encoder table missing: {path} (run `coe models fit-encoder`)")
        self._table, digest = _load(str(path.resolve()), path.stat().st_mtime_ns)
        if self._table.ndim != 2 or self._table.shape[1] != self.dim:
            raise ConfigError(f"static encoder table {path} has shape {self._table.shape}, not (vocab, {self.dim})")
        self.model_id = f"minilm-l6-v2-static-{digest[:16]}"
        tok = Tokenizer.from_file(str(resolve_embedder("minilm-l6-v2-int8") / "tokenizer.json"))
        # The file pads every text to a fixed length; a padded token would count in the mean.
        tok.no_padding()
        tok.enable_truncation(max_length)
        if tok.get_vocab_size() != len(self._table):
            raise ConfigError(f"static encoder table {path} does not match the MiniLM tokenizer's vocabulary")
        self._tok = tok

    @classmethod
    def fit_to(
        cls,
        texts: list[str],
        *,
        folder: str | os.PathLike | None = None,
        force: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> dict:
        """Fit the table to MiniLM on ``texts`` (the exemplar bank's fields) unless the folder already
        holds the table fitted to these texts by this MiniLM. Returns what the fit file records."""
        from coe.atomic import write_bytes

        from .minilm_onnx import MiniLMOnnxEmbedder
        from .static_fit import fit_table

        say = progress or (lambda _msg: None)
        target = Path(folder) if folder is not None else table_dir()
        teacher = MiniLMOnnxEmbedder()
        texts = sorted({t for t in texts if t and t.strip()})
        source = hashlib.sha256("\x00".join([FIT_FORMAT, teacher.model_id, *texts]).encode()).hexdigest()
        info_path = target / INFO_FILE
        if not force and (target / TABLE_FILE).is_file() and info_path.is_file():
            try:
                info = json.loads(info_path.read_text())
            except (OSError, ValueError):
                info = {}
            if info.get("source") == source:
                return {**info, "status": "up to date"}
        from coe.paths import writable_dir

        writable_dir(target, "model store", "COE_MODELS_DIR")  # before minutes of work, not after
        say(f"fitting the static encoder: MiniLM vectors of {len(texts)} texts")
        targets = teacher.embed(texts)
        say("fitting the static encoder: MiniLM vectors of each token")
        fit = fit_table(teacher.unpadded_tokenizer(), teacher.token_vectors(), texts, targets, progress=say)
        buf = io.BytesIO()
        np.save(buf, fit.table, allow_pickle=False)
        # the table first: a fit file naming a table that was never written would vouch for the old one
        write_bytes(target / TABLE_FILE, buf.getvalue())
        info = {
            "format": FIT_FORMAT,
            "source": source,
            "teacher": teacher.model_id,
            "texts": fit.texts,
            "tokens_fitted": fit.tokens_fitted,
            "l2": fit.l2,
            "holdout_cosine": fit.holdout_cosine,
            "holdout_cosine_before_fit": fit.init_holdout_cosine,
        }
        write_info(target, info)
        return {**info, "status": "fitted"}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, enc in enumerate(self._tok.encode_batch([t or " " for t in texts])):
            out[i] = self._table[enc.ids].mean(axis=0)
        out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
        return out


@lru_cache(maxsize=2)
def _load(path: str, mtime_ns: int) -> tuple[np.ndarray, str]:
    """The table (read once per file version in a process) and the sha256 of its bytes."""
    data = Path(path).read_bytes()
    table = np.load(io.BytesIO(data), allow_pickle=False)
    table.flags.writeable = False
    return table, hashlib.sha256(data).hexdigest()


def write_info(folder: Path, info: dict) -> None:
    from coe.atomic import write_text

    write_text(folder / INFO_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")
