import pytest

from retriever.core.datasets import HOTPOT, SPLIT_SEED, TEST_SIZE, load_dataset, read_qrels, write_beir
from retriever.core.errors import InputError, MissingResourceError


def test_nfcorpus_counts(nfcorpus):
    assert len(nfcorpus.queries) == 3237
    queries, qrels = nfcorpus.split("test")
    assert len(qrels) == 323 and sum(len(d) for d in qrels.values()) == 12334
    assert sum(1 for _ in nfcorpus.documents()) == 3633


def test_hotpotqa_conversion_and_deterministic_split():
    data = load_dataset(HOTPOT)
    assert len(data.queries) == 1100 and sum(1 for _ in data.documents()) == 10785
    test, dev = data.qrels["test"], data.qrels["dev"]
    assert len(test) == TEST_SIZE >= 500 and len(dev) == 1100 - TEST_SIZE
    assert not set(test) & set(dev)
    query = data.queries["5a70f4c45542994082a3e437"]
    assert query.metadata["answer"] == "Gian Carlo Menotti" and query.metadata["type"] == "bridge"
    qrels = {**test, **dev}["5a70f4c45542994082a3e437"]
    assert qrels == {"Maria Golovin": 1, "Gian Carlo Menotti": 1}
    docs = {d.doc_id: d for d, _, _ in data.documents()}
    assert docs["Maria Golovin"].title == "Maria Golovin" and "opera" in docs["Maria Golovin"].text
    again = load_dataset(HOTPOT)
    assert again.qrels["test"].keys() == test.keys() and SPLIT_SEED == 2026


def test_write_beir_round_trip(tmp_path):
    data = load_dataset(HOTPOT)
    write_beir(data, tmp_path / "hp")
    reloaded = load_dataset(str(tmp_path / "hp"))
    assert reloaded.qrels == data.qrels
    assert reloaded.queries["5a70f4c45542994082a3e437"].metadata["answer"] == "Gian Carlo Menotti"
    assert sum(1 for _ in reloaded.documents()) == 10785


def test_data_dir_and_env_resolution(tmp_path, monkeypatch, nfcorpus_slice):
    (tmp_path / "mine").symlink_to(nfcorpus_slice)
    assert load_dataset("mine", data_dir=tmp_path).name == "mine"
    monkeypatch.setenv("RETRIEVER_DATA", str(tmp_path))
    assert load_dataset("mine").source == str(tmp_path / "mine")


def test_missing_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(MissingResourceError, match=r"looked in: .*fiqa.*--download"):
        load_dataset("fiqa", data_dir=tmp_path)


def test_bad_qrels_line(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\n")
    with pytest.raises(InputError, match=r"q.tsv:3: expected 3"):
        read_qrels(path)
