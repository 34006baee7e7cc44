import pytest

from retriever.core.metrics import aggregate, exact_match, f1_score, normalize_answer, per_query
from retriever.core.errors import SpecError
from retriever.fusion import Fusion, normalized_score_fusion, reciprocal_rank_fusion
from retriever.core.specs import parse_spec


@pytest.mark.parametrize("text, canonical", [
    ("bm25", "bm25"),
    ("hnsw=dense(factory=HNSW32)", "hnsw=dense(factory=HNSW32)"),
    ("dense( factory = 'IVF64,PQ8' , model=/m/x )", "dense(factory='IVF64,PQ8',model=/m/x)"),
    ("rrf(bm25, dense, k=20)", "rrf(bm25,dense,k=20)"),
])
def test_specs_round_trip(text, canonical):
    assert str(parse_spec(text)) == canonical
    assert parse_spec(canonical) == parse_spec(text)


@pytest.mark.parametrize("text", ["rrf(", "dense(a=1,b)", "a b", "x(k=1,k=2)", "x('open)"])
def test_bad_specs_raise_with_position(text):
    with pytest.raises(SpecError, match="position"):
        parse_spec(text)


def test_rrf_by_hand():
    a = [("d1", 9.0), ("d2", 8.0)]
    b = [("d2", 0.9), ("d3", 0.8)]
    fused = dict(reciprocal_rank_fusion([a, b], k=60))
    assert fused["d2"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["d1"] == pytest.approx(1 / 61)
    assert fused["d3"] == pytest.approx(1 / 62)
    assert [d for d, _ in reciprocal_rank_fusion([a, b])] == ["d2", "d1", "d3"]


def test_normalized_fusion_by_hand():
    a = [("d1", 10.0), ("d2", 5.0), ("d3", 0.0)]
    b = [("d3", 1.0), ("d1", 0.5)]
    fused = dict(normalized_score_fusion([a, b], weights=[0.5, 0.5]))
    assert fused["d1"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.0)
    assert fused["d2"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.0)  # missing from b -> b's minimum
    assert fused["d3"] == pytest.approx(0.5 * 0.0 + 0.5 * 1.0)


def test_fusion_spec_parse_and_round_trip():
    fusion = Fusion.parse("norm(bm25^0.3,dense^0.7,method=zscore)")
    assert fusion.names == ("bm25", "dense") and fusion.weights == (0.3, 0.7)
    assert str(fusion) == "norm(bm25^0.3,dense^0.7,method=zscore)"
    assert str(Fusion.parse("rrf(bm25,dense)")) == "rrf(bm25,dense)"
    for bad in ["max(a,b)", "rrf()", "rrf(a,a)", "rrf(a,b,method=x)", "norm(a^x)"]:
        with pytest.raises(SpecError):
            Fusion.parse(bad)


def test_metrics_by_hand_and_missing_queries_count_as_zero():
    qrels = {"a": {"d1": 1, "d2": 2}, "b": {"d3": 1}}
    run = {"a": [("d2", 3.0), ("x", 2.0), ("d1", 1.0)]}
    # DCG = 2/log2(2) + 1/log2(4) = 2.5; IDCG = 2 + 1/log2(3)
    ideal = 2 + 1 / 1.584962500721156
    values = per_query(qrels, run)
    assert values["nDCG@10"]["a"] == pytest.approx(2.5 / ideal)
    assert values["nDCG@10"]["b"] == 0.0
    assert aggregate(qrels, run)["nDCG@10"] == pytest.approx(2.5 / ideal / 2)
    assert aggregate(qrels, run)["RR@10"] == pytest.approx(0.5)


def test_answer_normalization_em_f1():
    assert normalize_answer("The  Beatles!") == "beatles"
    assert exact_match("the beatles", "Beatles") == 1.0
    assert f1_score("Gian Carlo Menotti", "Menotti") == pytest.approx(0.5)
    assert f1_score("yes", "no") == 0.0 and f1_score("no", "no") == 1.0
