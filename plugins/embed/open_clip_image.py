"""open_clip's image and text towers: the image signal of exemplar retrieval.

``pretrained`` is a local checkpoint (a ``.pt``/``.pth``/``.bin``/``.safetensors`` file for the ``model``
architecture, or an open_clip directory with ``open_clip_config.json`` and its weights), an open_clip tag
such as ``openai`` (downloaded from the model hub, so refused at once when offline), or ``None``: random
weights, which only tests use. ``model`` is a built-in architecture name or a model config ``.json`` file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from coe.errors import ConfigError, InputError
from coe.imageio import DEFAULT_MAX_PIXELS, check_image, load_image, load_image_bytes

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
LOCAL_DIR_CONFIG = "open_clip_config.json"
_PRECISIONS = ("fp32", "fp16", "bf16")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def _sampled_digest(files: list[Path]) -> str:
    """Size plus the first and last MiB of each file: tells checkpoints apart (for the index fingerprint)
    without reading a gigabyte on every start."""
    h = hashlib.sha256()
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.name}:{size}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
            if size > 2 << 20:
                fh.seek(-(1 << 20), os.SEEK_END)
                h.update(fh.read())
    return h.hexdigest()[:12]


def _looks_like_path(value: str) -> bool:
    return (
        os.sep in value or "/" in value or value.startswith(("~", ".")) or value.lower().endswith(CHECKPOINT_SUFFIXES)
    )


def _arch(open_clip: Any, model: str | os.PathLike) -> str:
    """A built-in architecture name, or a config file registered with open_clip under its file stem."""
    path = Path(model).expanduser()
    if str(model).lower().endswith(".json"):
        if not path.is_file():
            raise ConfigError(f"open_clip model config not found: {path}")
        open_clip.add_model_config(path)
        return path.stem
    if open_clip.get_model_config(str(model)) is None:
        raise ConfigError(
            f"unknown open_clip model {str(model)!r}: not a built-in architecture "
            "(open_clip.list_models()) or a model config .json file"
        )
    return str(model)


def resolve(
    open_clip: Any, model: str | os.PathLike, pretrained: str | os.PathLike | None, seed: int
) -> tuple[str, str | None, str]:
    """(open_clip model name, its ``pretrained`` argument, a label of the weights for ``model_id``)."""
    if pretrained is not None:
        path = Path(pretrained).expanduser()
        if path.is_dir():
            if not (path / LOCAL_DIR_CONFIG).is_file():
                raise ConfigError(f"{path} is not an open_clip checkpoint directory (no {LOCAL_DIR_CONFIG})")
            weights = sorted(p for p in path.iterdir() if p.suffix.lower() in CHECKPOINT_SUFFIXES)
            if not weights:
                raise ConfigError(f"no checkpoint ({', '.join(CHECKPOINT_SUFFIXES)}) in {path}")
            # The directory carries its own architecture; ``model`` does not apply.
            return f"local-dir:{path.resolve()}", None, f"{path.name}@{_sampled_digest(weights)}"
        arch = _arch(open_clip, model)
        if path.is_file():
            if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
                raise ConfigError(f"not an open_clip checkpoint: {path} (expected {', '.join(CHECKPOINT_SUFFIXES)})")
            return arch, str(path.resolve()), f"{path.name}@{_sampled_digest([path])}"
        tag = str(pretrained)
        if _looks_like_path(tag):
            raise ConfigError(f"open_clip checkpoint not found: {path}")
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if tag not in tags:
            raise ConfigError(
                f"unknown open_clip pretrained tag {tag!r} for {arch} "
                f"(known: {', '.join(tags) or 'none'}); or pass a local checkpoint path"
            )
        from coe.modelstore.store import offline

        if offline():
            raise ConfigError(
                f"open_clip weights {arch}/{tag} come from the model hub, which is off "
                "(HF_HUB_OFFLINE/COE_OFFLINE); pass a local checkpoint path "
                f"({', '.join(CHECKPOINT_SUFFIXES)} file or open_clip directory) as pretrained"
            )
        return arch, tag, tag
    return _arch(open_clip, model), None, f"random-init-seed{seed}"


class OpenClipImageEmbedder:
    name = "open-clip"

    def __init__(
        self,
        model: str | os.PathLike = "ViT-B-32",
        pretrained: str | os.PathLike | None = "openai",
        *,
        device: str | None = None,
        precision: str | None = None,
        batch_size: int = 32,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        seed: int = 0,
    ) -> None:
        try:
            import open_clip
            import torch
        except ImportError as exc:
            raise ConfigError(
                "the open_clip image embedder needs open_clip_torch and torchvision: "
                f"pip install 'coe[clip]' ({_first_line(exc)})"
            ) from None
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        precision = precision or ("fp32" if device == "cpu" else "fp16")
        if precision not in _PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(_PRECISIONS)}, not {precision!r}")
        if device == "cpu" and precision != "fp32":
            # Half precision on CPU is slower than fp32 and some kernels lack it.
            raise ConfigError(f"precision {precision} needs a GPU; on the CPU use fp32")
        arch, weights, label = resolve(open_clip, model, pretrained, seed)
        self._torch = torch
        self.device = device
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self._dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        try:
            # Random init is seeded so that an index and the queries against it agree across processes.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                # pretrained_text=False: with no CLIP checkpoint, never fetch a text tower's own weights.
                net, _, preprocess = open_clip.create_model_and_transforms(
                    arch, pretrained=weights, device=device, precision=precision, pretrained_text=False
                )
            tokenizer = open_clip.get_tokenizer(arch)
        except Exception as exc:  # open_clip and the hub client raise many unrelated types
            raise ConfigError(f"could not load open_clip model {arch} ({label}): {_first_line(exc)}") from None
        self._model = net.eval()
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        arch_label = Path(arch.removeprefix("local-dir:")).name if arch.startswith("local-dir:") else arch
        self.model_id = f"open_clip/{arch_label}/{label}"
        self.dim = int(self._encode_texts([""]).shape[1])

    # -- images ----------------------------------------------------------------------------------------
    def _load(self, item: Any) -> Image.Image:
        if isinstance(item, Image.Image):
            return check_image(item, max_pixels=self.max_pixels)
        if isinstance(item, (bytes, bytearray, memoryview)):
            return load_image_bytes(bytes(item), max_pixels=self.max_pixels)
        if isinstance(item, (str, os.PathLike)):
            return load_image(item, max_pixels=self.max_pixels)
        raise InputError(f"not an image: {type(item).__name__} (expected a PIL image, a path or bytes)")

    def embed_images(self, images: list) -> np.ndarray:
        torch = self._torch
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(images), self.batch_size):
            # Decoded per batch, so a long list never holds every image in memory at once.
            pixels = torch.stack([self._preprocess(self._load(x)) for x in images[start : start + self.batch_size]])
            with torch.inference_mode():
                feats = self._model.encode_image(pixels.to(self.device, dtype=self._dtype))
            out.append(feats.float().cpu().numpy())
        return _unit(np.concatenate(out))

    # -- texts -----------------------------------------------------------------------------------------
    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            feats = self._model.encode_text(self._tokenizer(texts).to(self.device))
        return feats.float().cpu().numpy()

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        for start in range(0, len(texts), self.batch_size):
            out.append(self._encode_texts(list(texts[start : start + self.batch_size])))
        return _unit(np.concatenate(out))


def _unit(vecs: np.ndarray) -> np.ndarray:
    # Normalised here rather than in the model so half-precision outputs come back exactly unit length.
    vecs = vecs.astype(np.float32)
    return vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
