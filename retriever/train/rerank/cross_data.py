"""Training groups for the cross-encoder: a query, one relevant passage, hard negatives.

Hard negatives are what the first stage ranks high but the qrels do not mark
relevant: the top ``depth`` of a hybrid retrieval (``rrf(bm25,dense)``) over the
dataset's own corpus, minus every judged-relevant document of the query. They are
topped up with random corpus documents when retrieval finds too few.

Positives come from the same pool: relevant documents the first stage retrieves
within ``depth``; a query whose relevant documents are all outside it gives no
group. Drawing positives from anywhere in the qrels (NFCorpus judges hundreds of
loosely related abstracts per query) teaches a shortcut, "the passage that matches
the query's words is the negative": a model trained that way ranked NFCorpus train
queries' judged documents below their unjudged neighbours (precision@5 of the
hybrid top-30 fell from 0.67 to 0.32).

Only training and development splits go in (NFCorpus ``train``, hotpotqa-distractor
``dev``): :func:`mine_groups` refuses a ``test`` split.

Example:
    >>> groups = mine_groups(Engine.open("work/nfcorpus"), load_dataset("nfcorpus"), "train")
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from retriever.core.errors import InputError
from retriever.core.progress import progress
from retriever.rerank.scores import passage

BATCH = 128


@dataclass(frozen=True)
class Group:
    """One training example: a query, one relevant passage, its hard negatives, and where it came from."""

    query: str
    positive: str
    negatives: tuple[str, ...]
    source: str


def mine_groups(engine, dataset, split: str, negatives: int = 7, positives: int = 2, depth: int = 30,
                using: str = "rrf(bm25,dense)", seed: int = 0) -> list[Group]:
    """Groups of (query, one relevant passage, ``negatives`` hard negatives) from a dataset split.

    Args:
        engine: an engine over the dataset's corpus (its indexes give the hard negatives).
        dataset: the dataset (queries, qrels).
        split: a training or development split (never ``test``).
        negatives: negatives per group.
        positives: at most this many groups per query, one per retrieved relevant document (sampled).
        depth: how deep the first stage is read for negatives.
        using: the first stage (index name or fusion spec).
        seed: seeds which positives and negatives are drawn.

    Raises:
        InputError: a test split was asked for.
    """
    if split == "test":
        raise InputError(f"{dataset.name}: the cross-encoder is never trained on a test split")
    queries, qrels = dataset.split(split)
    ids = [qid for qid in sorted(queries) if any(s > 0 for s in qrels[qid].values())]
    rng = random.Random(f"{seed}:{dataset.name}:{split}")
    all_ids = engine.corpus.ids
    groups = []
    for start in progress(range(0, len(ids), BATCH), desc=f"hard negatives ({dataset.name} {split})", unit="batch"):
        chunk = ids[start:start + BATCH]
        rankings = engine.rankings([queries[q].text for q in chunk], k=depth, using=using)
        for qid, ranking in zip(chunk, rankings):
            judged = set(qrels[qid])
            retrieved = [doc_id for doc_id, _ in ranking]
            relevant = sorted(d for d in retrieved if qrels[qid].get(d, 0) > 0)
            hard = [doc_id for doc_id in retrieved if doc_id not in judged]
            for positive in rng.sample(relevant, min(positives, len(relevant))):
                chosen = rng.sample(hard, min(negatives, len(hard)))
                while len(chosen) < negatives:
                    extra = rng.choice(all_ids)
                    if extra not in judged and extra not in chosen:
                        chosen.append(extra)
                docs = {d.doc_id: d for d in engine.corpus.get_many([positive, *chosen])}
                groups.append(Group(queries[qid].text, passage(docs[positive].title, docs[positive].text),
                                    tuple(passage(docs[d].title, docs[d].text) for d in chosen),
                                    f"{dataset.name}/{split}"))
    return groups
