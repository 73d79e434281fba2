"""Tables of the verify task (answerability, verifier quality), shared by report.md and the console."""

from __future__ import annotations

from typing import Any

from .bootstrap import with_ci

ANSWER_NOTE = (
    "The answering agent (`coe.agents.verify.solve`, options shuffled by seed) on each item: "
    "`key_top` is the share of items where the key scores strictly above every distractor, `key_prob` "
    "the mean probability of the key. `gold` is the ScienceQA item; `dg:V` the gold question with "
    "variant V's distractors; `qg+dg:V` V's question with V's distractors. `unusable`: generated items "
    "without a question or distractors, or with duplicate, placeholder or key-equal distractors."
)
QUALITY_NOTE = (
    "`verify_item` on every gold item and on known-false versions of it. Recall: share of "
    "known-false items flagged; precision: flagged known-false / (flagged known-false + flagged gold), "
    "each known-false item paired with its own gold item (a 1:1 mix); false-positive rate: share of "
    "gold items flagged. Kinds: `wrong_template` (the question of another item with the same answer "
    "and another template), `second_key` (a distractor replaced by a WordNet synonym of the key), "
    '`key_in_question` ("… Answer: KEY" appended), `unrelated_question` (the question of an item '
    "with another answer type), and the teacher's faults: `subject_option` (the question's subject as "
    "an option), `near_duplicate` (two options that say the same thing), `other_form` (an option of "
    "another form), `other_names` (another item's names in the question), `rationale_true` (a "
    "distractor the gold rationale states), `vague_question` (a question asking for no one thing)."
)
VERIFIED_NOTE = (
    "Items marked `verified` (no flag, the student saw what the question is about, the key ahead of "
    "every distractor by the margin): precision is the share of them that are gold items, each "
    "source item's known-false versions against its gold item counted as often (a 1:1 mix). "
    "Calibration: the smallest margin whose precision reaches 0.9 on this sample (fit it on val, "
    "report it on test)."
)


def _ci(fig: dict[str, Any]) -> str:
    return with_ci(fig["value"], fig["ci"])


def verify_tables(verify: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[Any]]]]:
    """(title, note, header, rows) for each table of the verify task."""
    tables = []
    answers = verify.get("answerability") or {}
    if answers:
        rows = [[source, a["n"], a["unusable"], _ci(a["key_top"]), _ci(a["key_prob"])] for source, a in answers.items()]
        tables.append(("Answerability", ANSWER_NOTE, ["item", "n", "unusable", "key_top", "key_prob"], rows))
    quality = verify.get("quality")
    if quality:
        fpr = _ci(quality["gold"]["false_positive_rate"])
        rows = [
            [kind, k["n"], k["skipped"], _ci(k["recall"]), _ci(k["precision"]), fpr]
            for kind, k in quality["kinds"].items()
        ]
        o = quality["overall"]
        rows.append(["all kinds", o["n"], o["skipped"], _ci(o["recall"]), _ci(o["precision"]), fpr])
        rows.append([f"gold (n={quality['gold']['n']})", quality["gold"]["n"], 0, "–", "–", fpr])
        tables.append(
            (
                "Verifier quality",
                QUALITY_NOTE,
                ["kind", "n", "skipped", "recall", "precision", "false-positive rate"],
                rows,
            )
        )
        verified = verify.get("verified")
        if verified:
            cal = verify.get("calibration") or {}
            rows = [
                [
                    f"{verified['margin']:.2f} (setting)",
                    verified["n_gold"],
                    verified["n_false"],
                    _ci(verified["precision"]),
                    _ci(verified["gold_verified_rate"]),
                ]
            ]
            rows += [
                [f"{t['margin']:.2f}", t["n_gold"], t["n_false"], _ci(t["precision"]), _ci(t["gold_verified_rate"])]
                for t in cal.get("table", [])
            ]
            tables.append(
                (
                    f"Verified items (calibrated margin: {cal.get('margin')})",
                    VERIFIED_NOTE,
                    ["margin", "gold verified", "known-false verified", "precision", "gold verified rate"],
                    rows,
                )
            )
        reasons = [
            [kind, reason, count]
            for kind, k in quality["kinds"].items()
            for reason, count in sorted(k["skip_reasons"].items())
        ]
        if reasons:
            tables.append(
                (
                    "Known-false items not built",
                    "Items for which a kind could not be built, by reason.",
                    ["kind", "reason", "items"],
                    reasons,
                )
            )
    return tables
