"""Batch-1 greedy decoding for Qwen2-VL at memory speed: a static KV cache, the decode step compiled and
replayed as one CUDA graph per token.

A decode step reads every weight once, so its floor is weight bytes / memory bandwidth. ``generate()``
spends several times that between kernels: Python logits processors, stopping checks that wait for the
GPU, and many small unfused kernels. Here the whole step (embedding, decoder, ``lm_head``, repetition
penalty, argmax, and writing the token back as the next input) is one graph replay with no host
synchronisation; the host checks for end-of-sequence only every ``check_every`` tokens.

The prefill (vision tower, multimodal rotary positions) runs through the model's own ``forward``; decode
steps then feed the text model directly with explicit 3-D positions (text position + the prefill's
rope delta) and a ready 4-D attention mask over the static cache, so nothing in the step depends on host
values. On the CPU the same step runs eagerly (tests compare it with ``generate``).
"""

from __future__ import annotations

from typing import Any


def supported(model) -> bool:
    """Transformers ≥ 5 (static cache layers that keep their length on the device), a Qwen2-VL family model."""
    try:
        from transformers.cache_utils import StaticLayer
    except ImportError:
        return False
    return (
        "cumulative_length" in StaticLayer.__init__.__code__.co_names
        and hasattr(model, "lm_head")
        and hasattr(getattr(model, "model", None), "language_model")
    )


class GraphDecoder:
    """Greedy decoder for one sequence of up to ``max_len`` tokens (prompt + new) on ``model``."""

    def __init__(
        self,
        model,
        max_len: int,
        *,
        use_graph: bool | None = None,
        compile: bool | None = None,
        compile_mode: str | None = None,
    ):
        import torch
        from transformers import StaticCache

        self.model = model
        self.lm = model.model.language_model
        self.max_len = max_len
        param = next(model.parameters())
        self.device, self.dtype = param.device, param.dtype
        cuda = self.device.type == "cuda"
        self.use_graph = cuda if use_graph is None else use_graph
        self.compile = cuda if compile is None else compile
        # Inductor's default mode fuses the small kernels and leaves matmuls to cuBLAS; CUDA graphs are
        # ours, so its own graph modes ("reduce-overhead") must not be used on top.
        self.compile_mode = compile_mode or "default"
        self.cache = StaticCache(config=model.config, max_cache_len=max_len)
        dev = self.device
        self.tok = torch.zeros((1, 1), dtype=torch.long, device=dev)
        self.pos = torch.zeros((), dtype=torch.long, device=dev)
        self.delta = torch.zeros((), dtype=torch.long, device=dev)
        self.step_idx = torch.zeros((1,), dtype=torch.long, device=dev)
        self.penalty = torch.ones((), dtype=torch.float32, device=dev)
        vocab = model.lm_head.weight.shape[0]
        self.seen = torch.zeros((vocab,), dtype=torch.bool, device=dev)
        self.out = torch.zeros((max_len,), dtype=torch.long, device=dev)
        self.arange = torch.arange(max_len, device=dev)
        self.mask = torch.zeros((1, 1, 1, max_len), dtype=self.dtype, device=dev)
        self.neg = torch.finfo(self.dtype).min
        self.graph = None
        self.mode = "eager"
        self._step = self._step_impl

    # -- the step: static shapes, no host reads --
    def _step_impl(self) -> None:
        import torch

        emb = self.lm.embed_tokens(self.tok)
        position_ids = (self.pos + self.delta).view(1, 1, 1).expand(3, 1, 1)
        self.mask.copy_(torch.where(self.arange <= self.pos, 0.0, self.neg).view(1, 1, 1, -1))
        hidden = self.lm(
            inputs_embeds=emb,
            attention_mask=self.mask,
            position_ids=position_ids,
            past_key_values=self.cache,
            use_cache=True,
        ).last_hidden_state
        self._choose(self.model.lm_head(hidden[:, -1]).float()[0])
        self.pos.add_(1)

    def _choose(self, logits) -> None:
        """Repetition penalty over every token seen (prompt included), as transformers applies it; argmax."""
        import torch

        penalized = torch.where(logits < 0, logits * self.penalty, logits / self.penalty)
        logits = torch.where(self.seen, penalized, logits)
        nxt = logits.argmax(-1, keepdim=True)
        self.tok.copy_(nxt.view(1, 1))
        self.out.index_copy_(0, self.step_idx, nxt)
        self.seen.index_fill_(0, nxt, True)
        self.step_idx.add_(1)

    # -- set-up of the fast path, on first use --
    def _state(self) -> list:
        return [self.tok, self.pos, self.step_idx, self.seen, self.out] + [
            layer.cumulative_length for layer in self.cache.layers
        ]

    def _prepare(self) -> None:
        if self.graph is not None or not self.use_graph:
            return
        try:
            self._capture(self.compile)
        except Exception as exc:
            if not self.compile:
                raise
            # A compiled step that cannot be captured still leaves the launch-bound eager step to capture.
            import warnings

            warnings.warn(f"compiled decode step not capturable ({type(exc).__name__}: {exc}); capturing eagerly")
            self.compile = False
            self._capture(False)

    def _capture(self, compiled: bool) -> None:
        import torch

        step = self._step_impl
        if compiled:
            step = torch.compile(self._step_impl, dynamic=False, fullgraph=False, mode=self.compile_mode)
        saved = [t.clone() for t in self._state()]
        try:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):  # compile, autotune and allocate outside the capture
                    step()
            torch.cuda.current_stream().wait_stream(stream)
        finally:
            for t, s in zip(self._state(), saved):  # the warm-up must not count as decoding
                t.copy_(s)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):  # recorded, not run: the state stays as restored above
            step()
        self.graph = graph
        self.mode = "cuda-graph" + (f"+compiled({self.compile_mode})" if compiled else "")

    def _replay(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._step()

    # -- decoding --
    def generate(
        self,
        inputs: dict[str, Any],
        max_new_tokens: int,
        *,
        eos_token_ids=(),
        ignore_eos: bool = False,
        repetition_penalty: float = 1.0,
        check_every: int = 16,
    ) -> list[int]:
        """New token ids for one prompt (``inputs`` from the processor, batch 1)."""
        import torch

        n_prompt = inputs["input_ids"].shape[1]
        if inputs["input_ids"].shape[0] != 1:
            raise ValueError("GraphDecoder decodes one sequence at a time")
        if n_prompt + max_new_tokens > self.max_len:
            raise ValueError(f"prompt {n_prompt} + {max_new_tokens} new tokens exceed the cache of {self.max_len}")
        with torch.inference_mode():
            self.cache.reset()
            self.model.model.rope_deltas = None
            out = self.model(**inputs, past_key_values=self.cache, use_cache=True, logits_to_keep=1)
            deltas = self.model.model.rope_deltas
            self.delta.copy_(deltas.reshape(-1)[0] if deltas is not None else torch.zeros((), dtype=torch.long))
            self.pos.fill_(n_prompt)
            self.step_idx.zero_()
            self.penalty.fill_(float(repetition_penalty))
            self.seen.zero_()
            if repetition_penalty != 1.0:
                self.seen.index_fill_(0, inputs["input_ids"][0].to(self.device), True)
            self._choose(out.logits[0, -1].float())
            self._prepare()
            eos = set(int(e) for e in eos_token_ids)
            done = 1
            while done < max_new_tokens:
                burst = min(check_every, max_new_tokens - done)
                for _ in range(burst):
                    self._replay()
                done += burst
                if eos and not ignore_eos and eos & set(self.out[:done].tolist()):
                    break
            ids = self.out[:done].tolist()
        if not ignore_eos:
            for n, t in enumerate(ids):
                if t in eos:
                    return ids[: n + 1]
        return ids[:max_new_tokens]
