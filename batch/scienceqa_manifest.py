"""A manifest of ScienceQA items with pictures, for reproducing batch runs on the benchmark's own inputs.

The manifest names the images where the dataset keeps them (absolute paths); nothing is copied.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path
from typing import cast

from coe.errors import InputError

from .manifest import COLUMNS


def scienceqa_manifest(
    data: str | Path | None, out: str | Path, *, split: str = "test", n: int = 20, seed: int = 0
) -> tuple[Path, int]:
    """Write ``n`` items of ``split`` that have an image (a seeded sample) as a CSV manifest: the hint as
    context, the answer, one distractor fewer than the item's choices; tagged with subject and grade."""
    from coe.atomic import write_text
    from coe.dataset_loaders import ScienceQA

    if n < 1:
        raise InputError("--n must be at least 1")
    ds = ScienceQA(data)
    with_image = [p for p in ds.split(split) if p.image_path is not None and len(p.choices) >= 2]
    if not with_image:
        raise InputError(f"the ScienceQA {split} split has no items with images in {ds.root}")
    chosen = sorted(random.Random(seed).sample(with_image, min(n, len(with_image))), key=lambda p: int(p.pid))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for p in chosen:
        image = cast(Path, p.image_path)  # with_image holds only problems with an image path
        w.writerow(
            {
                "id": f"sqa-{p.pid}",
                "image": str(image.resolve()),
                "context": "" if p.hint_missing else p.hint,
                "answer": p.answer,
                "question": "",
                "n_distractors": min(3, len(p.choices) - 1),
                "tags": ";".join(t for t in (p.subject, p.grade) if t),
            }
        )
    return write_text(out, buf.getvalue()), len(chosen)
