"""Retrieval metrics through ir-measures, and answer EM / F1 with HotpotQA's normalization.

Every query with qrels counts: a query the system returned nothing for scores 0
(pytrec_eval alone would silently drop it from the average).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Mapping, Sequence

import ir_measures
from ir_measures import RR, R, nDCG

DEFAULT_MEASURES = (nDCG @ 10, R @ 100, RR @ 10)
Ranking = Sequence[tuple[str, float]]


def parse_measures(names: Sequence[str]) -> list:
    """Measures from their canonical names, e.g. ``["nDCG@10", "R@100"]``."""
    return [ir_measures.parse_measure(name) for name in names]


def per_query(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Ranking],
              measures: Sequence = DEFAULT_MEASURES) -> dict[str, dict[str, float]]:
    """``{measure name: {query id: value}}`` for every query in ``qrels``."""
    scored = {qid: {doc_id: float(score) for doc_id, score in ranking} for qid, ranking in run.items()}
    values = {str(m): {qid: 0.0 for qid in qrels} for m in measures}
    for metric in ir_measures.iter_calc(list(measures), {q: dict(d) for q, d in qrels.items()}, scored):
        if metric.query_id in qrels:
            values[str(metric.measure)][metric.query_id] = float(metric.value)
    return values


def aggregate(qrels: Mapping[str, Mapping[str, int]], run: Mapping[str, Ranking],
              measures: Sequence = DEFAULT_MEASURES) -> dict[str, float]:
    """Mean of each measure over all queries in ``qrels``."""
    return {name: sum(v.values()) / max(len(v), 1) for name, v in per_query(qrels, run, measures).items()}


def normalize_answer(text: str) -> str:
    """HotpotQA's official normalization: lower-case, drop punctuation, articles and extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalized strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
    """Token F1 as in HotpotQA's evaluation script (yes/no/noanswer must match exactly)."""
    pred, ref = normalize_answer(prediction), normalize_answer(gold)
    if pred in ("yes", "no", "noanswer") or ref in ("yes", "no", "noanswer"):
        if pred != ref:
            return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = Counter(pred_tokens) & Counter(ref_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(pred_tokens), overlap / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def best_exact_match(prediction: str, answers: Sequence[str]) -> float:
    """The best :func:`exact_match` over the gold answer and its aliases (0.0 without any)."""
    return max((exact_match(prediction, a) for a in answers), default=0.0)


def best_f1(prediction: str, answers: Sequence[str]) -> float:
    """The best :func:`f1_score` over the gold answer and its aliases (0.0 without any)."""
    return max((f1_score(prediction, a) for a in answers), default=0.0)
