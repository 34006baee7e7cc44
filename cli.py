"""The ``retriever`` command line: a thin layer over the Python API.

Groups by verb: ``index`` (build, add, info), ``search``, ``eval`` (beir, check,
table), ``data`` (prepare), ``bench``. Every long step shows a progress bar;
``--json`` prints machine-readable output.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from retriever.errors import RetrieverError


class _Group(click.Group):
    """Turns the package's typed errors into one clean line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except RetrieverError as e:
            raise click.ClickException(str(e)) from None
        except FileExistsError as e:
            raise click.ClickException(str(e)) from None


def _split_kinds(value: str | None) -> list[str]:
    return [k.strip() for k in value.split(",") if k.strip()] if value else []


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False), default=None,
                               help="Data root to look in first (then $RETRIEVER_DATA, then ../shared/data).")
download_option = click.option("--download", is_flag=True, help="Allow downloading a missing dataset or model.")


@click.group(cls=_Group)
@click.version_option(package_name="retriever")
def main() -> None:
    """retriever: learned sparse, dense and generative indexes, fused; evaluated on BEIR."""


@main.group(cls=_Group)
def index() -> None:
    """Build, extend and inspect engine directories."""


@index.command("build")
@click.argument("engine_dir", type=click.Path(file_okay=False))
@click.option("--dataset", help="Dataset name or directory (BEIR layout) whose corpus to index.")
@click.option("--corpus", type=click.Path(dir_okay=False, exists=True), help="A BEIR corpus.jsonl to index.")
@click.option("--kinds", default=None, help="Comma-separated index kinds, e.g. bm25,dense.")
@click.option("--index", "specs", multiple=True, help="Index spec, e.g. 'hnsw=dense(factory=HNSW32)'. Repeatable.")
@click.option("--overwrite", is_flag=True, help="Replace an existing engine or index of the same name.")
@data_dir_option
@download_option
def index_build(engine_dir, dataset, corpus, kinds, specs, overwrite, data_dir, download) -> None:
    """Build ENGINE_DIR; if it already holds an engine, add the given indexes to it."""
    from retriever.engine import STATE, Engine

    if download:
        import os

        os.environ["RETRIEVER_ALLOW_DOWNLOAD"] = "1"
    wanted = _split_kinds(kinds) + list(specs)
    if (Path(engine_dir) / STATE).exists() and not (overwrite and (dataset or corpus)):
        engine = Engine.open(engine_dir)
        engine.build_indexes(wanted, overwrite=overwrite)
    else:
        if bool(dataset) == bool(corpus):
            raise click.UsageError("give exactly one of --dataset and --corpus")
        documents = _dataset(dataset, data_dir, download).documents() if dataset else corpus
        engine = Engine.build(engine_dir, documents, indexes=wanted or ["bm25", "dense"], overwrite=overwrite)
    click.echo(f"{engine.path}: {len(engine.corpus)} documents; indexes: {', '.join(engine.names)}")


@index.command("add")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("documents", type=click.Path(exists=True, dir_okay=False))
def index_add(engine_dir, documents) -> None:
    """Append the documents of a BEIR-style JSONL file to the corpus and every index."""
    from retriever.engine import Engine

    engine = Engine.open(engine_dir)
    added = engine.add(documents)
    click.echo(f"added {added} documents; {len(engine.corpus)} in total")


@index.command("info")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
def index_info(engine_dir) -> None:
    """Print the engine's corpus and index manifests as JSON."""
    from retriever.engine import Engine

    engine = Engine.open(engine_dir)
    info = {"path": str(engine.path), "corpus": engine.corpus.manifest,
            "indexes": {name: idx.manifest for name, idx in engine.indexes.items()}}
    click.echo(json.dumps(info, indent=2))


@main.command()
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("query")
@click.option("-k", default=10, show_default=True, help="Number of hits.")
@click.option("--using", default=None, help="Index name, 'hybrid', or a fusion spec like 'rrf(bm25,dense)'.")
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON.")
def search(engine_dir, query, k, using, as_json) -> None:
    """Search ENGINE_DIR for QUERY."""
    from retriever.engine import Engine

    hits = Engine.open(engine_dir).search(query, k=k, using=using)
    if as_json:
        click.echo(json.dumps([hit.__dict__ for hit in hits], ensure_ascii=False, indent=2))
        return
    for rank, hit in enumerate(hits, start=1):
        click.echo(f"{rank:>3}  {hit.score:9.4f}  {hit.doc_id}  {hit.title[:70]}")
        click.echo(f"     {hit.text[:160]}")


@main.group(name="eval", cls=_Group)
def eval_group() -> None:
    """Evaluate on BEIR datasets and check the reproducibility table."""


@eval_group.command("beir")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", required=True, help="Dataset name or directory in BEIR layout.")
@click.option("--split", default="test", show_default=True)
@click.option("--using", "systems", multiple=True, help="Index name or fusion spec; repeatable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--depth", default=1000, show_default=True, help="Per-index depth before fusion.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@data_dir_option
def eval_beir(engine_dir, dataset, split, systems, out_dir, depth, as_json, data_dir) -> None:
    """Evaluate systems of ENGINE_DIR on a dataset split: nDCG@10, R@100, MRR@10."""
    from dataclasses import asdict

    from eval.beir import evaluate, markdown_table
    from retriever.engine import Engine

    engine = Engine.open(engine_dir)
    data = _dataset(dataset, data_dir, False)
    results = evaluate(engine, data, split, list(systems) or engine.names, out_dir, depth=depth)
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results], indent=2))
    else:
        click.echo(markdown_table(data.name, split, results))
        click.echo(f"runs, JSON and Markdown written to {out_dir}/")


@eval_group.command("check")
@click.option("--table", "table_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Reproducibility table (default: eval/reproductions.yaml).")
@click.option("--only", multiple=True, help="Only rows of this dataset or system; repeatable.")
@click.option("--work", "work_dir", type=click.Path(file_okay=False), default="work/check", show_default=True,
              help="Where engines for the checks are built (reused when present).")
@data_dir_option
def eval_check(table_path, only, work_dir, data_dir) -> None:
    """Run every row of the reproducibility table; print OK / FAIL; exit 1 on a FAIL."""
    from eval.reproduce import check, load_table

    rows = check(load_table(table_path), Path(work_dir), only=only, data_dir=data_dir, echo=click.echo)
    if any(not row.ok for row in rows):
        sys.exit(1)


@eval_group.command("table")
@click.option("--table", "table_path", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option("--readme", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Rewrite the results block of this README in place.")
def eval_table(table_path, readme) -> None:
    """Print the reproducibility table as Markdown (or write it into a README)."""
    from eval.reproduce import load_table, markdown, update_readme

    rows = load_table(table_path)
    if readme:
        update_readme(Path(readme), rows)
        click.echo(f"updated {readme}")
    else:
        click.echo(markdown(rows))


@main.group(cls=_Group)
def train() -> None:
    """Train models: learned sparse doc encoders, rerankers, generative indexes."""


@main.group(cls=_Group)
def data() -> None:
    """Prepare datasets."""


@data.command("prepare")
@click.argument("name", type=click.Choice(["hotpotqa"]))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="data/hotpotqa-distractor",
              show_default=True)
@data_dir_option
def data_prepare(name, out_dir, data_dir) -> None:
    """Convert HotpotQA's distractor file into BEIR layout (corpus, queries, dev/test qrels)."""
    from eval.datasets import HOTPOT, write_beir

    dataset = _dataset(HOTPOT, data_dir, False)
    write_beir(dataset, Path(out_dir))
    sizes = ", ".join(f"{split} {len(q)}" for split, q in sorted(dataset.qrels.items()))
    click.echo(f"wrote {out_dir}: {len(dataset.queries)} questions ({sizes})")


@main.command()
@click.option("--dataset", default="nfcorpus", show_default=True)
@click.option("--systems", default="bm25,dense(factory=Flat),dense(factory=HNSW32)", show_default=True,
              help="Index specs to benchmark, separated by ';' or ',' between specs.")
@click.option("--queries", "query_count", default=200, show_default=True, help="Queries for latency.")
@click.option("--limit", default=None, type=int, help="Index only the first N documents.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/bench", show_default=True)
@data_dir_option
def bench(dataset, systems, query_count, limit, out_dir, data_dir) -> None:
    """Benchmark build throughput, latency, QPS, size and peak RSS, as ratios to BM25."""
    from eval.bench import run_benchmark, split_specs

    report = run_benchmark(dataset, split_specs(systems), Path(out_dir), query_count, limit, data_dir)
    click.echo(report)


def _dataset(name: str, data_dir: str | None, download: bool):
    from eval.datasets import load_dataset

    return load_dataset(name, data_dir=data_dir, download=download)


if __name__ == "__main__":
    main()
