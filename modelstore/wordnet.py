"""WordNet 3.0 for NLTK (METEOR in eval; at run time the proper-noun cue and the rankers' sister terms),
assembled from Debian's wordnet-base and wordnet-sense-index.

Debian ships the database files but not the ``lexnames`` table NLTK's reader needs; that table is a fixed
part of WordNet 3.0 (see lexnames(5WN)), so it is written here."""

from __future__ import annotations

import json
import os
import shutil
import threading
from functools import cache
from pathlib import Path

from coe.errors import ConfigError
from coe.paths import coe_home
from coe.settings import settings

DEBIAN_WORDNET = Path("/usr/share/wordnet")
REQUIRED = [
    "data.noun",
    "data.verb",
    "data.adj",
    "data.adv",
    "index.noun",
    "index.verb",
    "index.adj",
    "index.adv",
    "noun.exc",
    "verb.exc",
    "adj.exc",
    "adv.exc",
    "index.sense",
]
LEXNAMES = """adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body
noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive
noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity noun.relation
noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition verb.communication
verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion verb.perception
verb.possession verb.social verb.stative verb.weather adj.ppl""".split()
_SYNTACTIC = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}


def lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_SYNTACTIC[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def nltk_data_dir() -> Path:
    return settings().nltk_data or coe_home() / "nltk_data"


def ensure_wordnet(source: Path = DEBIAN_WORDNET) -> Path:
    """Build (once) ``<nltk_data>/corpora/wordnet`` and put it on NLTK's search path."""
    import nltk

    root = nltk_data_dir()
    target = root / "corpora" / "wordnet"
    if not (target / "lexnames").is_file():
        missing = [f for f in REQUIRED if not (source / f).is_file()]
        if missing:
            raise ConfigError(
                f"WordNet files missing in {source} ({', '.join(missing[:3])}…); install the Debian "
                "packages wordnet-base and wordnet-sense-index (make test does)"
            )
        tmp = target.with_name("wordnet.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in source.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        (tmp / "lexnames").write_text(lexnames_text())
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    return target


# NLTK's WordNet reader seeks in shared file handles: one lookup at a time (graph.batch runs items in threads).
WORDNET_LOCK = threading.RLock()


def english_reader(root: Path):
    """NLTK's WordNet reader over ``root`` without the Open Multilingual Wordnet. NLTK's own loader maps every
    sense key onto WordNet 3.0's for the multilingual data on each load, reading the sense index twice: about
    60 % of a 5-second first use, for functions coe never calls. The same lemmas, synsets and relations."""
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        def map_wn(self, version="wordnet"):
            return None

        def open(self, file):
            # The files read once, front to back, while loading (180,000 index lines): a plain text file reads
            # them several times faster than NLTK's seekable stream, which the data files keep for their
            # byte-offset seeks.
            if file == "lexnames" or file.endswith(".exc") or (file.startswith("index.") and file != "index.sense"):
                return open(os.path.join(self.root.path, file), encoding="utf8")
            return super().open(file)

        def _scan_satellites(self):
            self._index_copy = _read_index_copy(Path(self.root.path))
            if self._index_copy is None:
                super()._scan_satellites()
            else:
                self.satellite_offsets = set(self._index_copy["satellites"])

        def _load_lemma_pos_offset_map(self):
            if getattr(self, "_index_copy", None) is not None:
                self._lemma_pos_offset_map.update(self._index_copy["lemmas"])
                self._index_copy = None
                return
            super()._load_lemma_pos_offset_map()
            _write_index_copy(Path(self.root.path), self.satellite_offsets, self._lemma_pos_offset_map)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available": none is used
        return EnglishWordNet(str(root), None)


# NLTK parses the four index files (150,000 lemmas) and scans the adjective data on every load: 1.4 s of a
# process's first item on 2 cores. The parsed maps, as JSON beside the files, load in a fraction of that;
# they name the NLTK version and the size and time of every file they were parsed from.
_INDEX_COPY = "coe-index-copy.json"
_PARSED_FROM = ("index.noun", "index.verb", "index.adj", "index.adv", "data.adj")


def _source_stamp(root: Path) -> list:
    import nltk

    stats = [(root / name).stat() for name in _PARSED_FROM]
    return [nltk.__version__, *[[name, st.st_size, st.st_mtime_ns] for name, st in zip(_PARSED_FROM, stats)]]


def _read_index_copy(root: Path) -> dict | None:
    try:
        data = json.loads((root / _INDEX_COPY).read_text(encoding="utf-8"))
        if data.get("stamp") == _source_stamp(root):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _write_index_copy(root: Path, satellites: set, lemmas: dict) -> None:
    from coe.atomic import write_text

    try:
        stamp = _source_stamp(root)
        write_text(root / _INDEX_COPY, json.dumps({"stamp": stamp, "satellites": sorted(satellites), "lemmas": lemmas}))
    except OSError:
        pass  # read-only data: the next load parses the files again


@cache
def wordnet_reader():
    """WordNet 3.0 through NLTK when it can be set up (the Debian files are there); None otherwise, in which
    case the run-time uses of WordNet (the proper-noun kind cue, the rankers' sister terms) are not made."""
    with WORDNET_LOCK:
        try:
            reader = english_reader(ensure_wordnet())
            reader.synsets("dog")
            return reader
        except Exception:  # noqa: BLE001 - an optional lexical resource; its absence disables two cues
            return None
