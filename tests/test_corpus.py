import json
import os

import pytest

from retriever.core.corpus import Corpus, Document, read_beir_corpus
from retriever.core.errors import InputError


def write_lines(path, lines):
    path.write_bytes(b"".join(line if isinstance(line, bytes) else line.encode() for line in lines))
    return path


GOOD = ['{"_id": "a", "title": "A", "text": "alpha"}\n', '{"_id": "b", "text": "beta"}\n']


def test_round_trip_and_mapping(tmp_path, nfcorpus):
    corpus = Corpus.create(tmp_path / "c", nfcorpus.documents())
    assert len(corpus) == 3633
    assert corpus.ids[0] == "MED-10"
    assert corpus.row_of("MED-10") == 0
    doc = corpus["MED-10"]
    assert doc.title.startswith("Statin Use") and doc.text
    assert [d.doc_id for d in corpus.get_many(["MED-14", "MED-10"])] == ["MED-14", "MED-10"]
    assert "MED-10" in corpus and "nope" not in corpus
    reopened = Corpus.open(tmp_path / "c")
    assert reopened.checksum == corpus.checksum and len(reopened) == 3633


def test_checksum_depends_on_content(tmp_path):
    a = Corpus.create(tmp_path / "a", [Document("1", "t", "x")])
    b = Corpus.create(tmp_path / "b", [Document("1", "t", "y")])
    c = Corpus.create(tmp_path / "c", [Document("1", "t", "x")])
    assert a.checksum != b.checksum and a.checksum == c.checksum


@pytest.mark.parametrize("bad, line, message", [
    ('{"_id": "c", "text": "gamma"\n', 3, "malformed JSON"),
    ('{"title": "no id", "text": "x"}\n', 3, "missing '_id'"),
    ('{"_id": "", "text": "x"}\n', 3, "empty '_id'"),
    ('{"_id": "a", "text": "again"}\n', 3, "duplicate id 'a'"),
    (b'{"_id": "c", "text": "caf\xe9"}\n', 3, "not UTF-8"),
    ('{"_id": "c", "title": "no text"}\n', 3, "has no 'text'"),
    ('["_id", "c"]\n', 3, "expected a JSON object"),
])
def test_bad_input_names_file_and_line_and_writes_nothing(tmp_path, bad, line, message):
    path = write_lines(tmp_path / "corpus.jsonl", GOOD + [bad])
    with pytest.raises(InputError) as error:
        Corpus.create(tmp_path / "store", read_beir_corpus(path))
    assert f"{path}:{line}:" in str(error.value) and message in str(error.value)
    assert error.value.line == line
    assert not (tmp_path / "store").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.jsonl"]  # no temporary left behind


def test_duplicate_names_first_occurrence(tmp_path):
    path = write_lines(tmp_path / "corpus.jsonl", GOOD + ['{"_id": "b", "text": "dup"}\n'])
    with pytest.raises(InputError, match=r"duplicate id 'b' \(first seen at .*corpus.jsonl:2\)"):
        Corpus.create(tmp_path / "store", read_beir_corpus(path))


def test_empty_corpus_is_an_error(tmp_path):
    path = write_lines(tmp_path / "corpus.jsonl", ["\n"])
    with pytest.raises(InputError, match="empty"):
        Corpus.create(tmp_path / "store", read_beir_corpus(path))


def test_extend_links_old_parts_and_keeps_old_version(tmp_path):
    path = write_lines(tmp_path / "corpus.jsonl", GOOD)
    old = Corpus.create(tmp_path / "v1", read_beir_corpus(path))
    new = old.extend(tmp_path / "v2", [{"_id": "c", "title": "C", "text": "gamma"}])
    assert new.ids == ["a", "b", "c"] and old.ids == ["a", "b"]
    assert new["c"].text == "gamma" and new.checksum != old.checksum
    assert os.stat(tmp_path / "v1" / "part-00000.arrow").st_ino == os.stat(tmp_path / "v2" / "part-00000.arrow").st_ino
    with pytest.raises(InputError, match="duplicate id 'a'"):
        new.extend(tmp_path / "v3", [{"_id": "a", "text": "x"}])
    assert not (tmp_path / "v3").exists()


def test_metadata_and_integer_ids(tmp_path):
    corpus = Corpus.create(tmp_path / "c", [{"_id": 7, "text": "t", "metadata": {"url": "u"}}])
    assert corpus["7"].metadata == {"url": "u"}
    assert json.loads(json.dumps(corpus["7"].to_beir()))["_id"] == "7"
