"""Grammar-constrained decoding for llama.cpp at the price of one token check per step.

llama-cpp-python puts the JSON grammar first in its sampler chain (``Llama._init_sampler``), so every
decoded token tests the whole vocabulary (152k tokens for Qwen2.5) against the grammar. Here the chain
samples without the grammar and the grammar checks only the token chosen; when it rejects that token, the
step is sampled again with the grammar first over the full vocabulary, as llama.cpp's own ``common_sampler``
does. A greedy reply is therefore the one grammar-first decoding gives, token for token, and a seeded
sampled reply is the unconstrained one wherever the grammar would not have changed a token."""

from __future__ import annotations

import ctypes
import functools

import numpy as np


class GrammarLastSampler:
    """Stands in for llama-cpp-python's ``LlamaSampler`` (``sample(ctx, idx)``, ``close()``)."""

    def __init__(self, chain, grammar_sampler, n_vocab: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._chain = chain  # a LlamaSampler built without the grammar (frees itself)
        self._grammar = grammar_sampler  # a bare llama_sampler pointer, freed in close()
        self.n_vocab = n_vocab
        self.tokens: list[int] = []  # the tokens chosen, in order
        self.overruled: list[int] = []  # the steps (indexes into tokens) where the grammar changed the choice
        dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
        assert dtype.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._data = np.zeros(n_vocab, dtype=dtype)
        self._array = llama_cpp.llama_token_data_array(
            data=self._data.ctypes.data_as(llama_cpp.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
        )
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(data=self._one, size=1, selected=-1, sorted=False)

    def _fill(self, ctx, idx: int) -> None:
        logits = self._lib.llama_get_logits_ith(ctx.ctx, idx)
        self._data["id"] = self._ids  # samplers sort the array in place: the ids move with the logits
        self._data["logit"] = np.ctypeslib.as_array(logits, shape=(self.n_vocab,))
        self._data["p"] = 0.0
        # the C field is a pointer, which ctypes takes; llama_cpp annotates it as an array
        self._array.data = self._data.ctypes.data_as(self._lib.llama_token_data_p)  # type: ignore[assignment]
        self._array.size, self._array.selected, self._array.sorted = self.n_vocab, -1, False

    def _chosen(self) -> int:
        return int(self._array.data[self._array.selected].id)

    def _allowed(self, token: int) -> bool:
        # ctypes fields take Python ints; llama_cpp annotates the id as c_int32
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 1.0, 0.0  # type: ignore[assignment]
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self._grammar, ctypes.byref(self._one_array))
        return self._one[0].logit != float("-inf")

    def sample(self, ctx, idx: int = -1) -> int:
        self._fill(ctx, idx)
        self._lib.llama_sampler_apply(self._chain.sampler, ctypes.byref(self._array))
        token = self._chosen()
        if not self._allowed(token):
            self.overruled.append(len(self.tokens))
            self._fill(ctx, idx)
            self._lib.llama_sampler_apply(self._grammar, ctypes.byref(self._array))
            self._lib.llama_sampler_apply(self._chain.sampler, ctypes.byref(self._array))
            token = self._chosen()
        self._lib.llama_sampler_accept(self._grammar, token)
        self._lib.llama_sampler_accept(self._chain.sampler, token)
        self.tokens.append(token)
        return token

    def accept(self, token: int) -> None:
        self._lib.llama_sampler_accept(self._grammar, token)
        self._chain.accept(token)

    def reset(self) -> None:
        self._lib.llama_sampler_reset(self._grammar)
        self._chain.reset()

    def close(self) -> None:
        if self._grammar is not None:
            self._lib.llama_sampler_free(self._grammar)
            self._grammar = None
        self._chain.close()

    def __del__(self) -> None:
        self.close()


def _init_sampler(llm, original, *args, grammar=None, **kwargs):
    """``Llama._init_sampler`` with the grammar checked last; without a grammar, llama-cpp-python's own."""
    chain = original(*args, grammar=None, **kwargs)
    if grammar is None:
        return chain
    import llama_cpp

    grammar_sampler = llama_cpp.llama_sampler_init_grammar(
        llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8")
    )
    if not grammar_sampler:
        chain.close()
        raise ValueError("llama.cpp could not parse the JSON-schema grammar")
    llm.last_sampler = sampler = GrammarLastSampler(chain, grammar_sampler, llm.n_vocab())
    return sampler


def grammar_last(llm):
    """Install the grammar-last sampler on one ``Llama`` instance (its class stays untouched)."""
    llm._init_sampler = functools.partial(_init_sampler, llm, llm._init_sampler)
    return llm
