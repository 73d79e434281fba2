"""Question banks as exemplars: a teacher's own Moodle XML, GIFT, Aiken, QTI 2.1, CSV or JSONL bank
imported as a named exemplar bank beside ScienceQA's (``default``), for retrieval to search."""

from .importer import FORMATS, ImportReport, import_bank
from .registry import (
    DEFAULT_BANK,
    BankInfo,
    list_banks,
    parse_banks,
    remove_bank,
    require_banks,
)

__all__ = [
    "DEFAULT_BANK",
    "FORMATS",
    "BankInfo",
    "ImportReport",
    "import_bank",
    "list_banks",
    "parse_banks",
    "remove_bank",
    "require_banks",
]
