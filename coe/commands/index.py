"""`coe index`: build the exemplar index."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console

err = Console(stderr=True)

index_app = typer.Typer(no_args_is_help=True, help="Build the exemplar index.")


@index_app.command("build")
def index_build(
    splits: str = typer.Option("train,val", help="Comma-separated ScienceQA splits for the exemplar bank."),
    data: Optional[str] = typer.Option(None, "--data", help="ScienceQA folder (or $COE_SCIENCEQA_DIR)."),
    chroma: Optional[str] = typer.Option(None, "--chroma-dir", help="Chroma directory (or $COE_CHROMA_DIR)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when the index is up to date."),
    rankers: bool = typer.Option(
        True, "--rankers/--no-rankers", help="Train the learned rankers after the embeddings (skipped when up to date)."
    ),
    image_embedder: Optional[str] = typer.Option(
        None,
        "--image-embedder",
        envvar="COE_IMAGE_EMBEDDER",
        help="Also build the image collection with this image embedder plugin (e.g. open-clip).",
    ),
    image_model: Optional[str] = typer.Option(
        None, "--image-model", envvar="COE_IMAGE_MODEL", help="Its architecture (open-clip: e.g. ViT-B-32)."
    ),
    image_weights: Optional[str] = typer.Option(
        None,
        "--image-weights",
        envvar="COE_IMAGE_WEIGHTS",
        help="Its weights: a local checkpoint file or directory (or a hub tag when online).",
    ),
) -> None:
    """Embed the exemplar bank into Chroma (re-running only adds what is missing)."""
    from coe.progress import field_progress

    from coe.dataset_loaders import ScienceQA
    from coe.plugins.embed.configured import configured_image_embedder
    from coe.plugins.registry import resolve
    from coe.retrieval.index import build_image_index, build_index, default_bank, exemplar_images
    from coe.retrieval.static_encoder import ensure_table

    from .models import fit_summary

    dataset = ScienceQA(data)
    bank = default_bank(dataset, tuple(s.strip() for s in splits.split(",") if s.strip()))
    store = resolve("vector_store", path=chroma)
    fitted = ensure_table(data, progress=err.print)
    if fitted is not None:
        err.print(fit_summary(fitted), highlight=False)
    embedder = resolve("text_embedder")
    # Loaded before any embedding, so a bad image model spec fails before minutes of text indexing.
    images = configured_image_embedder(image_embedder, model=image_model, pretrained=image_weights)
    with field_progress(err) as progress:
        result = build_index(bank, embedder=embedder, store=store, progress=progress, force=force)
        if images is not None:
            image_result = build_image_index(
                bank, exemplar_images(dataset, bank), image_embedder=images, store=store, progress=progress, force=force
            )
    err.print(
        f"index {result['status']}: {result['exemplars']} exemplars "
        f"({result['added']} records added) in {store.location}"
    )
    from coe.modelstore.wordnet import wordnet_reader
    from coe.retrieval.memory_bank import InMemoryBank

    # The copies a new process reads first (the bank's matrices, WordNet's parsed index), made now rather
    # than in a teacher's first item; each is only read back while it matches what it was made from.
    InMemoryBank(store, "default").loaded("default-answer")
    wordnet_reader()
    if rankers:
        from coe.ranking.build import build_rankers
        from coe.ranking.train import TooFewItems
        from coe.retrieval.retriever import ExemplarRetriever

        from .rank import ranker_progress, summary

        try:
            with ranker_progress(err) as progress:
                ranked = build_rankers(ExemplarRetriever(embedder, store), force=force, progress=progress)
            err.print(summary(ranked), highlight=False, markup=False)
        except TooFewItems as exc:  # a small bank is still a usable index: the heuristic ranks its pools
            err.print(str(exc), highlight=False, markup=False)
    if images is not None:
        err.print(
            f"image index {image_result['status']} with {images.model_id}: "
            f"{image_result['added']} records added"
            + (f", {image_result['unreadable']} unreadable images" if image_result["unreadable"] else "")
        )
