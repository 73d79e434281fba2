#!/usr/bin/env python3
"""Write what the benchmark needs on a machine without the models dir or the ScienceQA folder.

    python bench/prepare_assets.py [--data DIR] [--gguf FILE] [--n 64]

bench/assets/tokenizer   the Qwen2 tokenizer read from the 0.5B GGUF, with the Qwen2-VL special tokens
bench/assets/scienceqa   a ScienceQA-shaped folder with the first N test image items (images already
                         448x448) and 400 train items with rationales (the exemplar pool)

bench/assets is not part of the repository (ScienceQA is CC BY-NC-SA: it is read, never committed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from qwen2vl_inputs import ASSETS, DEFAULT_GGUF, import_coe  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=None, help="ScienceQA folder (default ../shared/data/scienceqa)")
    ap.add_argument("--gguf", default=str(DEFAULT_GGUF))
    ap.add_argument("--n", type=int, default=64, help="test items to keep")
    ap.add_argument("--image-size", type=int, default=448)
    args = ap.parse_args()
    import_coe()
    from PIL import Image

    from coe.dataset_loaders import ScienceQA
    from coe.plugins.llm.vl_random import load_qwen2_tokenizer

    tok_dir = ASSETS / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        load_qwen2_tokenizer(args.gguf).save_pretrained(tok_dir)
    print(f"tokenizer: {tok_dir}")

    ds = ScienceQA(args.data)
    raw = json.loads((ds.root / "problems.json").read_text(encoding="utf-8"))
    captions = (
        json.loads((ds.root / "captions.json").read_text(encoding="utf-8")).get("captions", {})
        if (ds.root / "captions.json").is_file()
        else {}
    )
    tests = [p for p in ds.split("test") if p.image_path and Path(p.image_path).is_file()][: args.n]
    train = [p for p in ds.split("train") if p.rationale][:400]
    out = ASSETS / "scienceqa"
    problems = {}
    for p in tests:
        rel = f"images/test/{p.pid}/image.jpg"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.open(p.image_path).convert("RGB").resize((args.image_size, args.image_size), Image.BICUBIC).save(
            out / rel, quality=92
        )
        problems[p.pid] = {**raw[p.pid], "image_file": rel}
    for p in train:
        problems[p.pid] = {**raw[p.pid], "image_file": None}
    (out / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
    (out / "pid_splits.json").write_text(
        json.dumps({"test": [p.pid for p in tests], "train": [p.pid for p in train]}), encoding="utf-8"
    )
    (out / "captions.json").write_text(
        json.dumps({"captions": {pid: captions[pid] for pid in problems if pid in captions}}), encoding="utf-8"
    )
    (out / "README.md").write_text(
        "A ScienceQA subset for the benchmark (CC BY-NC-SA 4.0, Lu et al. 2022); do not redistribute.\n",
        encoding="utf-8",
    )
    print(f"scienceqa: {out} ({len(tests)} test items, {len(train)} train items)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
