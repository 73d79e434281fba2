"""all-MiniLM-L6-v2 as an int8 ONNX graph on onnxruntime: sentence embeddings with no PyTorch."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from coe.errors import ConfigError


class MiniLMOnnxEmbedder:
    name = "minilm-onnx"
    dim = 384

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        from tokenizers import Tokenizer

        if model_dir is None:
            from coe.modelstore import resolve_embedder

            model_dir = resolve_embedder("minilm-l6-v2-int8")
        model_dir = Path(model_dir)
        onnx_path, tok_path = model_dir / "model.onnx", model_dir / "tokenizer.json"
        for p in (onnx_path, tok_path):
            if not p.is_file():
                raise ConfigError(f"embedding model file missing: {p} (run `coe models pull minilm-l6-v2-int8`)")
        self.model_id = "all-MiniLM-L6-v2-onnx-int8"
        self.batch_size = batch_size
        self._tok = Tokenizer.from_file(str(tok_path))
        self._tok.enable_truncation(max_length)
        self._tok.enable_padding(pad_id=0, pad_token="[PAD]")
        # keyed by the file's identity too: a model pulled again in this process gets a new session
        self._session = _session(str(onnx_path.resolve()), onnx_path.stat().st_mtime_ns, threads or os.cpu_count() or 1)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        # Sorting by length keeps padding (and wasted compute) small within each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self._tok.encode_batch([texts[i] or " " for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            types = np.array([e.type_ids for e in enc], dtype=np.int64)
            hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out.append((idx, pooled.astype(np.float32)))
        result = np.zeros((len(texts), self.dim), dtype=np.float32)
        for idx, vecs in out:
            result[idx] = vecs
        return result

    def unpadded_tokenizer(self):
        """The tokenizer as a static encoder reads texts: truncated alike, never padded."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self._tok.to_str())
        tok.no_padding()
        return tok

    def token_vectors(self, batch_size: int = 1024) -> np.ndarray:
        """(vocab, dim): each vocabulary token's vector as a text of that one token ([CLS] token [SEP]),
        mean-pooled and not normalised: where a static encoder fitted to this model starts."""
        vocab = self._tok.get_vocab_size()
        cls_id, sep_id = self._tok.token_to_id("[CLS]"), self._tok.token_to_id("[SEP]")
        out = np.zeros((vocab, self.dim), dtype=np.float32)
        for start in range(0, vocab, batch_size):
            ids = np.arange(start, min(vocab, start + batch_size), dtype=np.int64)
            inputs = np.stack([np.full_like(ids, cls_id), ids, np.full_like(ids, sep_id)], axis=1)
            hidden = self._session.run(
                None,
                {"input_ids": inputs, "attention_mask": np.ones_like(inputs), "token_type_ids": np.zeros_like(inputs)},
            )[0]
            out[ids] = hidden.mean(axis=1)
        return out


@lru_cache(maxsize=4)
def _session(onnx_path: str, mtime_ns: int, threads: int):
    """One ONNX Runtime session per model file and thread count in a process, whoever builds an embedder
    (retrieval, material search, an index build): loading one costs far more than a query, and ``run`` is
    safe to call from several threads at once."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    # Idle worker threads sleep instead of spinning: a query is a few milliseconds, and spinning threads would
    # take the cores from the llama.cpp step that follows it (and, on a busy machine, from each other).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
