"""The parsed WordNet index kept beside the files: a later load reads it instead of parsing 150,000 lines,
gets the same maps as NLTK's own reader, and parses again when a file changes."""

import json
import os
import shutil
import warnings


def _stock(root):
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return WordNetCorpusReader(str(root), None)


def test_a_second_load_reads_the_parsed_copy_and_a_changed_file_is_parsed_again(tmp_path, monkeypatch):
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    from coe.modelstore.wordnet import english_reader, ensure_wordnet

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path), *nltk.data.path])  # NLTK reads only from its path
    root = tmp_path / "wordnet"
    shutil.copytree(ensure_wordnet(), root, ignore=shutil.ignore_patterns("coe-index-copy.json"))
    stock = _stock(root)
    parsed = english_reader(root)
    copy = root / "coe-index-copy.json"
    assert copy.is_file()

    parse = WordNetCorpusReader._load_lemma_pos_offset_map

    def refuse(self):
        raise AssertionError("parsed the index files again")

    monkeypatch.setattr(WordNetCorpusReader, "_load_lemma_pos_offset_map", refuse)
    loaded = english_reader(root)
    for reader in (parsed, loaded):
        assert reader._lemma_pos_offset_map == stock._lemma_pos_offset_map
        assert reader.satellite_offsets == stock.satellite_offsets and len(stock.satellite_offsets) > 10_000
    assert [s.name() for s in loaded.synsets("happy")] == [s.name() for s in stock.synsets("happy")]

    monkeypatch.setattr(WordNetCorpusReader, "_load_lemma_pos_offset_map", parse)
    noun = root / "index.noun"
    os.utime(noun, ns=(noun.stat().st_atime_ns, noun.stat().st_mtime_ns + 1_000_000_000))
    before = json.loads(copy.read_text())["stamp"]
    assert english_reader(root)._lemma_pos_offset_map == stock._lemma_pos_offset_map
    assert json.loads(copy.read_text())["stamp"] != before  # parsed and written again
