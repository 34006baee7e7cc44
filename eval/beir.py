"""BEIR evaluation of any index or fused pipeline of an engine, on one or several datasets.

For each system (an index name or a fusion spec) it writes a TREC run file, and for
the whole evaluation a JSON result (metrics, config, model settings, commit, timings),
a Markdown table and a per-query file (``system  measure  query_id  value``). Measures
are ir-measures names (default nDCG@10, R@100, RR@10). With a ``baseline`` system, every
other system is compared with it per measure by a paired t-test and a paired bootstrap
(:mod:`eval.significance`), Holm-corrected across the systems; the tables mark a
significant difference with ``*`` (t-test) and ``†`` (bootstrap).

Depth: each system's run holds ``k`` hits per query (100 by default); under fusion each
index is read to ``max(k, depth)``, ``depth`` defaulting to
:data:`retriever.engine.stage.DEFAULT_DEPTH` as everywhere else.

Example:
    >>> results = evaluate(Engine.open("work/nfcorpus"), load_dataset("nfcorpus"),
    ...                    systems=["bm25", "dense", "rrf(bm25,dense)"], out_dir="results/nfcorpus",
    ...                    baseline="bm25")
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from eval.report import write_report
from eval.runs import slug, write_run
from eval.significance import ALPHA, holm, paired_bootstrap, paired_t_test
from retriever.api import Engine
from retriever.core.datasets import Dataset
from retriever.core.errors import InputError
from retriever.core.metrics import DEFAULT_MEASURES, per_query
from retriever.core.progress import progress
from retriever.core.types import Ranking

RUN_DEPTH = 100
log = logging.getLogger(__name__)
RankingsFn = Callable[[Sequence[str], str], list[Ranking]]


@dataclass
class SystemResult:
    """Metrics, timings and (against a baseline) significance of one system on one dataset split.

    Attributes:
        significance: measure -> ``{"baseline", "difference", "low", "high", "t_p", "bootstrap_p"}``,
            p-values Holm-corrected across the compared systems (empty for the baseline).
        per_query: measure -> query id -> value (written to the per-query file, not the JSON).
    """

    system: str
    metrics: dict[str, float]
    queries: int
    seconds: float
    run_file: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    significance: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the per-query values."""
        out = asdict(self)
        out.pop("per_query")
        return out


def run_topics(engine: Engine, topics: Mapping[str, str], system: str, k: int = RUN_DEPTH,
               depth: int | None = None, batch_size: int = 256, rankings_fn: RankingsFn | None = None,
               desc: str = "") -> dict[str, Ranking]:
    """Query id -> ranking of ``system`` for every topic: what ``retriever search --topics`` writes."""
    ids, texts = list(topics), list(topics.values())
    rankings: list[Ranking] = []
    for start in progress(range(0, len(texts), batch_size), desc=desc or system, unit="batch"):
        chunk = texts[start:start + batch_size]
        rankings += (rankings_fn(chunk, system) if rankings_fn
                     else engine.rankings(chunk, k=k, using=system, depth=depth))
    return dict(zip(ids, rankings))


def check_corpus(engine: Engine, name: str, qrels: dict[str, dict[str, int]]) -> None:
    """Refuse to score an engine whose corpus holds none of the judged documents; warn when some are missing.

    Raises:
        InputError: not one judged document of ``qrels`` is in the engine's corpus (built on another corpus).
    """
    judged = {doc_id for docs in qrels.values() for doc_id in docs}
    missing = [doc_id for doc_id in judged if doc_id not in engine.corpus]
    source = engine.corpus.manifest.get("source") or "documents given in Python"
    if judged and len(missing) == len(judged):
        raise InputError(f"{engine.path} was built on another corpus ({source}): none of the {len(judged)} "
                         f"documents judged in {name} is in it; build an engine on {name} to evaluate on it")
    if missing:
        log.warning("%d of %d documents judged in %s are not in %s (built from %s); they count as not retrieved",
                    len(missing), len(judged), name, engine.path, source)


def evaluate(engine: Engine, dataset: Dataset, split: str = "test", systems: Sequence[str] = ("bm25",),
             out_dir: str | Path | None = None, k: int = RUN_DEPTH, depth: int | None = None,
             measures: Sequence = DEFAULT_MEASURES, baseline: str | None = None, batch_size: int = 256,
             rankings_fn: RankingsFn | None = None) -> list[SystemResult]:
    """Evaluate each system on ``dataset``'s ``split``; write runs, JSON, Markdown and per-query values.

    Args:
        engine: an open engine over the dataset's corpus.
        dataset: the dataset (queries and qrels).
        split: the qrels split.
        systems: index names or fusion specs (see :meth:`Engine.resolve`).
        out_dir: where the run files, ``<dataset>-<split>.json`` / ``.md`` / ``.perquery.tsv`` go.
        k: run depth per query.
        depth: how deep each index is read before fusion (default: the engine's one rule).
        measures: ir-measures measures (see :func:`retriever.core.metrics.parse_measures`).
        baseline: a system to test every other one against (added first when not in ``systems``).
        batch_size: queries per engine call (a progress bar advances per batch).
        rankings_fn: optional ``(queries, system) -> rankings`` replacing the engine
            call (e.g. to add a reranking stage).
    """
    systems = list(dict.fromkeys(([baseline] if baseline else []) + list(systems)))
    queries, qrels = dataset.split(split)
    check_corpus(engine, dataset.name, qrels)
    topics = {qid: q.text for qid, q in queries.items()}
    results = []
    for system in systems:
        started = time.perf_counter()
        run = run_topics(engine, topics, system, k, depth, batch_size, rankings_fn, f"{system} on {dataset.name}")
        seconds = time.perf_counter() - started
        values = per_query(qrels, run, measures)
        result = SystemResult(system, {m: sum(v.values()) / max(len(v), 1) for m, v in values.items()},
                              len(topics), round(seconds, 3), config=_system_config(engine, system),
                              per_query=values)
        if out_dir:
            result.run_file = str(write_run(Path(out_dir) / f"{dataset.name}-{split}-{slug(system)}.trec", run,
                                            system))
        results.append(result)
    if baseline:
        compare(results, baseline)
    if out_dir:
        write_results(Path(out_dir), dataset, split, results, {"k": k, "depth": depth, "engine": str(engine.path),
                                                               "baseline": baseline})
    return results


def compare(results: Sequence[SystemResult], baseline: str) -> None:
    """Fill each non-baseline result's ``significance`` against ``baseline`` (Holm across systems)."""
    base = next((r for r in results if r.system == baseline), None)
    if base is None:
        raise InputError(f"baseline {baseline!r} is not among the evaluated systems")
    others = [r for r in results if r is not base]
    for measure, base_values in base.per_query.items():
        qids = sorted(base_values)
        tests = []
        for r in others:
            a, b = [r.per_query[measure][q] for q in qids], [base_values[q] for q in qids]
            tests.append((paired_t_test(a, b), paired_bootstrap(a, b)))
        t_adjusted = holm([t for t, _ in tests])
        boot_adjusted = holm([boot.p_value for _, boot in tests])
        for r, (_, boot), t_p, boot_p in zip(others, tests, t_adjusted, boot_adjusted):
            r.significance[measure] = {"baseline": baseline, "difference": boot.difference, "low": boot.low,
                                       "high": boot.high, "t_p": t_p, "bootstrap_p": boot_p}


def marks(result: SystemResult, measure: str) -> str:
    """``*`` (paired t-test) and ``†`` (paired bootstrap) where the Holm-corrected p < 0.05."""
    test = result.significance.get(measure)
    if not test:
        return ""
    return ("*" if test["t_p"] < ALPHA else "") + ("†" if test["bootstrap_p"] < ALPHA else "")


def legend(baseline: str | None) -> str:
    if not baseline:
        return ""
    return (f"\n`*` / `†`: differs from `{baseline}` by a paired t-test / paired bootstrap (10,000 samples), "
            f"p < {ALPHA} after Holm correction across systems.\n")


def write_results(out_dir: Path, dataset: Dataset, split: str, results: Sequence[SystemResult],
                  config: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<dataset>-<split>.json`` / ``.md`` (one report) and ``.perquery.tsv`` into ``out_dir``."""
    stem = out_dir / f"{dataset.name}-{split}"
    payload = {"dataset": dataset.name, "split": split, "source": dataset.source, "config": config,
               "results": [r.to_dict() for r in results]}
    paths = write_report(stem, payload, markdown_table(dataset.name, split, results, config.get("baseline")))
    write_per_query(Path(f"{stem}.perquery.tsv"), results)
    return paths


def write_per_query(path: Path, results: Sequence[SystemResult]) -> Path:
    """One line per (system, measure, query): ``system<TAB>measure<TAB>query_id<TAB>value``."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("system\tmeasure\tquery_id\tvalue\n")
        for r in results:
            for measure, values in r.per_query.items():
                for qid, value in values.items():
                    f.write(f"{r.system}\t{measure}\t{qid}\t{value:.6f}\n")
    return path


def markdown_table(dataset: str, split: str, results: Sequence[SystemResult], baseline: str | None = None) -> str:
    """A Markdown table: one row per system, one column per measure (with significance marks), ms/query."""
    names = list(results[0].metrics) if results else []
    lines = [f"| {dataset} ({split}) | " + " | ".join(names) + " | ms / query |",
             "|---|" + "---:|" * (len(names) + 1)]
    for r in results:
        cells = " | ".join(f"{r.metrics[n]:.4f}{marks(r, n)}" for n in names)
        lines.append(f"| `{r.system}` | {cells} | {1000 * r.seconds / max(r.queries, 1):.1f} |")
    return "\n".join(lines) + "\n" + legend(baseline)


def cross_table(by_dataset: Mapping[str, Sequence[SystemResult]], measure: str) -> str:
    """The BEIR-style table: systems x datasets for one measure (with significance marks), plus the mean."""
    datasets = list(by_dataset)
    systems = list(dict.fromkeys(r.system for rs in by_dataset.values() for r in rs))
    lines = [f"| {measure} | " + " | ".join(datasets) + " | mean |", "|---|" + "---:|" * (len(datasets) + 1)]
    for system in systems:
        found = {d: next((r for r in by_dataset[d] if r.system == system), None) for d in datasets}
        cells = [f"{r.metrics[measure]:.4f}{marks(r, measure)}" if r else "" for r in found.values()]
        values = [r.metrics[measure] for r in found.values() if r]
        mean = f"{sum(values) / len(values):.4f}" if len(values) == len(datasets) else ""
        lines.append(f"| `{system}` | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines) + "\n"


def _system_config(engine: Engine, system: str) -> dict[str, Any]:
    target = engine.resolve(system)
    names = [target] if isinstance(target, str) else list(target.names)
    return {name: {"kind": engine.indexes[name].kind, "settings": engine.indexes[name].settings} for name in names}


def write_summary(out_dir: Path, split: str, by_dataset: Mapping[str, Sequence[SystemResult]],
                  baseline: str | None = None, plots: bool = True) -> tuple[Path, Path]:
    """The cross-dataset report ``beir-<split>.json`` / ``.md`` (one table per measure) and its plots.

    With ``plots``, ``beir-<split>-<measure>.png`` shows the first measure's table as bars and,
    with a ``baseline``, ``<dataset>-<split>-<system>-vs-<baseline>.png`` each system's per-query
    differences on that measure.
    """
    from eval.plots import grouped_bars, per_query_differences

    measures = list(next(iter(by_dataset.values()))[0].metrics) if by_dataset else []
    text = "\n".join(cross_table(by_dataset, m) for m in measures) + legend(baseline)
    payload = {"split": split, "baseline": baseline, "datasets": list(by_dataset),
               "results": {d: [r.to_dict() for r in rs] for d, rs in by_dataset.items()}}
    paths = write_report(out_dir / f"beir-{split}", payload, text)
    if plots and measures:
        first = measures[0]
        table: dict[str, dict[str, float]] = {}
        for dataset, results in by_dataset.items():
            for r in results:
                table.setdefault(r.system, {})[dataset] = r.metrics[first]
        grouped_bars(table, first, out_dir / f"beir-{split}-{slug(first)}.png")
        for dataset, results in by_dataset.items():
            base = next((r for r in results if r.system == baseline), None)
            for r in results if base else ():
                if r is not base:
                    per_query_differences(r.per_query[first], base.per_query[first], r.system, base.system, first,
                                          out_dir / f"{dataset}-{split}-{slug(r.system)}-vs-{slug(base.system)}.png")
    return paths
