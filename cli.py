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

from retriever.core.errors import RetrieverError


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


def _ray_options(command):
    """``--workers N [--ray-address ADDR]``: shard the step over Ray (without them Ray is not imported)."""
    command = click.option("--ray-address", default=None,
                           help="Ray cluster to join (default $RAY_ADDRESS, else a local one).")(command)
    return click.option("--workers", default=None, type=click.IntRange(min=1),
                        help="Shard the corpus over N Ray workers (pip install 'retriever[ray]').")(command)


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
@_ray_options
def index_build(engine_dir, dataset, corpus, kinds, specs, overwrite, data_dir, download, workers,
                ray_address) -> None:
    """Build ENGINE_DIR; if it already holds an engine, add the given indexes to it."""
    from retriever.api import Engine
    from retriever.engine.state import STATE

    if download:
        import os

        os.environ["RETRIEVER_ALLOW_DOWNLOAD"] = "1"
    wanted = _split_kinds(kinds) + list(specs)
    if (Path(engine_dir) / STATE).exists() and not (overwrite and (dataset or corpus)):
        if workers:
            from retriever.distributed.build import build_indexes

            build_indexes(engine_dir, wanted, workers, ray_address, overwrite=overwrite)
            engine = Engine.open(engine_dir)
        else:
            engine = Engine.open(engine_dir)
            engine.build_indexes(wanted, overwrite=overwrite)
    else:
        if bool(dataset) == bool(corpus):
            raise click.UsageError("give exactly one of --dataset and --corpus")
        documents = _dataset(dataset, data_dir, download).documents() if dataset else corpus
        if workers:
            from retriever.distributed.build import build

            build(engine_dir, documents, wanted or ["bm25", "dense"], workers, ray_address, overwrite=overwrite)
            engine = Engine.open(engine_dir)
        else:
            engine = Engine.build(engine_dir, documents, indexes=wanted or ["bm25", "dense"], overwrite=overwrite)
    click.echo(f"{engine.path}: {len(engine.corpus)} documents; indexes: {', '.join(engine.names)}")


@index.command("add")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("documents", type=click.Path(exists=True, dir_okay=False))
@_ray_options
def index_add(engine_dir, documents, workers, ray_address) -> None:
    """Append the documents of a BEIR-style JSONL file to the corpus and every index."""
    from retriever.api import Engine

    if workers:
        from retriever.distributed.build import add

        added = add(engine_dir, documents, workers, ray_address)
        engine = Engine.open(engine_dir)
    else:
        engine = Engine.open(engine_dir)
        added = engine.add(documents)
    click.echo(f"added {added} documents; {len(engine.corpus)} in total")


@index.command("info")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
def index_info(engine_dir) -> None:
    """Print the engine's corpus and index manifests as JSON."""
    from retriever.api import Engine

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
    from retriever.api import Engine

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
@click.option("--rerank", "reranks", multiple=True,
              help="Also rerank each system's top --candidates with this reranker spec, e.g. "
                   "'cross(path=work/models/cross-minilm,k=100)'; repeatable.")
@click.option("--candidates", default=100, show_default=True, help="With --rerank: hits the reranker sees.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@data_dir_option
def eval_beir(engine_dir, dataset, split, systems, out_dir, depth, reranks, candidates, as_json, data_dir) -> None:
    """Evaluate systems of ENGINE_DIR on a dataset split: nDCG@10, R@100, MRR@10."""
    from dataclasses import asdict

    from eval.beir import evaluate, markdown_table
    from retriever.api import Engine

    engine = Engine.open(engine_dir)
    data = _dataset(dataset, data_dir, False)
    if reranks:
        from eval.rerank import evaluate_reranked

        results = evaluate_reranked(engine, data, split, list(systems) or engine.names, list(reranks), out_dir,
                                    depth=depth, candidates=candidates)
    else:
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


# --- generative index (issue 4): quality next to cost, and the DSI++ forgetting experiment ---
@eval_group.command("generative")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", required=True, help="Dataset name or directory in BEIR layout.")
@click.option("--split", default="test", show_default=True)
@click.option("--using", "systems", multiple=True, help="Index name or fusion spec; repeatable (default: all + RRF).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/generative", show_default=True)
@data_dir_option
def eval_generative(engine_dir, dataset, split, systems, out_dir, data_dir) -> None:
    """nDCG@10, R@100, Hits@1/@10, ms/query, index size and build time per system of ENGINE_DIR."""
    from eval.generative import compare, markdown
    from retriever.api import Engine

    data = _dataset(dataset, data_dir, False)
    records = compare(Engine.open(engine_dir), data, split, list(systems), out_dir)
    click.echo(markdown(data.name, split, records))
    click.echo(f"runs, JSON and Markdown written to {out_dir}/")


@eval_group.command("continual")
@click.option("--dataset", default="nfcorpus", show_default=True)
@click.option("--index", "spec", default="generative", show_default=True, help="The generative index spec.")
@click.option("--train-queries", default="", help="Split of real training queries (old documents only), e.g. train.")
@click.option("--holdout", default=0.2, show_default=True, help="Share of documents added later.")
@click.option("--seed", default=0, show_default=True)
@click.option("--sam-rho", default=0.0, show_default=True, help="Also run DSI++ with SAM at this radius.")
@click.option("--variant", "variants", multiple=True,
              help="Also run DSI++ with these continual settings, e.g. 'replay=4,add_epochs=5'; repeatable.")
@click.option("--work", "work_dir", type=click.Path(file_okay=False), default="work/generative/continual",
              show_default=True, help="Where corpora and indexes are built (reused by a rerun).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/generative", show_default=True)
@data_dir_option
def eval_continual(dataset, spec, train_queries, holdout, seed, sam_rho, variants, work_dir, out_dir,
                   data_dir) -> None:
    """DSI++ forgetting: index 80% of a corpus, add 20%; old vs new quality against naive fine-tuning and a rebuild."""
    from eval.continual import markdown, run_continual, settings_from_spec

    payload = run_continual(dataset, Path(work_dir), Path(out_dir), settings_from_spec(spec), train_queries,
                            holdout, seed, sam_rho=sam_rho,
                            variants={v: settings_from_spec(f"generative({v})") for v in variants}, data_dir=data_dir)
    click.echo(markdown(payload))
    click.echo(f"JSON and Markdown written to {out_dir}/")


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
    from retriever.core.datasets import HOTPOT, write_beir

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
@click.option("--scale", is_flag=True, help="Instead: cost as a synthetic corpus grows (--sizes, --scale-workers; "
              "--systems defaults to bm25).")
@click.option("--sizes", default="10000,100000", show_default=True, help="With --scale: corpus sizes.")
@click.option("--scale-workers", default="0,1,2", show_default=True,
              help="With --scale: Ray worker counts to compare (0: single process, no Ray).")
def bench(dataset, systems, query_count, limit, out_dir, data_dir, scale, sizes, scale_workers) -> None:
    """Benchmark build throughput, latency, QPS, size and peak RSS, as ratios to BM25."""
    from eval.bench import run_benchmark, split_specs

    if scale:
        from eval.scale import run_scale

        chosen = split_specs(systems) if click.get_current_context().get_parameter_source("systems").name != "DEFAULT" \
            else ["bm25"]
        click.echo(run_scale(chosen, [int(n) for n in sizes.split(",")], [int(n) for n in scale_workers.split(",")],
                             Path(out_dir)))
        return

    report = run_benchmark(dataset, split_specs(systems), Path(out_dir), query_count, limit, data_dir)
    click.echo(report)


# --- multi-hop question answering (retriever ask, retriever eval multihop) ---

def _loop_options(command):
    """Options shared by `ask` and `eval multihop`: the model, the loop's settings and budgets."""
    options = [
        click.option("--llm", default=None, help="A .gguf file, a model directory, an http(s):// OpenAI-compatible "
                     "endpoint, or a spec like 'llamacpp(path=F.gguf)'; omit for the no-LLM mode."),
        click.option("--llm-model", default=None, help="Model name sent to an HTTP endpoint."),
        click.option("--threads", default=None, type=int, help="CPU threads for a local model."),
        click.option("--using", default="hybrid", show_default=True, help="Indexes to search (name or fusion spec)."),
        click.option("--rerank", default="top(k=5)", show_default=True, help="Evidence selector (reranker spec)."),
        click.option("--passages", default=5, show_default=True, help="Most passages passed to the reader."),
        click.option("--candidates", default=30, show_default=True, help="Hits retrieved per hop."),
        click.option("--max-hops", default=2, show_default=True, help="Retrieval rounds per question."),
        click.option("--max-tokens", default=8192, show_default=True, help="LM tokens per question."),
        click.option("--max-seconds", default=300.0, show_default=True, help="Seconds per question."),
        click.option("--no-refine", is_flag=True, help="Pass whole passages, not the useful sentences."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _loop_settings(using, rerank, passages, candidates, max_hops, max_tokens, max_seconds, no_refine) -> dict:
    from retriever.agent import Budget

    return {"using": using, "rerank": rerank, "passages": passages, "candidates": candidates,
            "budget": Budget(max_hops, max_tokens, max_seconds), "refine_sentences": not no_refine}


@main.command()
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("question")
@_loop_options
@click.option("--cache", type=click.Path(dir_okay=False), default=None, help="LM-call cache file (JSONL).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None, help="Write the trace JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer, citations and trace as JSON.")
def ask(engine_dir, question, llm, llm_model, threads, using, rerank, passages, candidates, max_hops, max_tokens,
        max_seconds, no_refine, cache, trace_path, as_json) -> None:
    """Answer QUESTION over ENGINE_DIR with the multi-hop loop; prints the answer and its citations."""
    from retriever.api import Engine
    from retriever.generate import open_generator

    generator = open_generator(llm, cache, model=llm_model, threads=threads)
    answer = Engine.open(engine_dir).ask(question, generator, **_loop_settings(
        using, rerank, passages, candidates, max_hops, max_tokens, max_seconds, no_refine))
    if trace_path:
        answer.trace.to_json(trace_path)
    if as_json:
        click.echo(json.dumps({"answer": answer.text, "citations": answer.citations,
                               "trace": answer.trace.to_dict()}, ensure_ascii=False, indent=2))
        return
    click.echo(answer.text)
    click.echo(f"citations: {', '.join(answer.citations)}")
    click.echo(f"hops: {len(answer.trace.hops)}, stop: {answer.trace.stop_reason}, LM tokens: {answer.trace.tokens}")


@eval_group.command("multihop")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", default="hotpotqa-distractor", show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--limit", default=None, type=int, help="Only the first N questions of the split.")
@click.option("--systems", default="closed-book,single-shot,agent", show_default=True)
@_loop_options
@click.option("--cache", type=click.Path(dir_okay=False), default=None,
              help="LM-call cache (default OUT/lm-cache.jsonl); rerunning resumes from it.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/multihop", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@data_dir_option
def eval_multihop(engine_dir, dataset, split, limit, systems, llm, llm_model, threads, using, rerank, passages,
                  candidates, max_hops, max_tokens, max_seconds, no_refine, cache, out_dir, as_json, data_dir) -> None:
    """Multi-hop QA on ENGINE_DIR: gold-document recall, EM / F1, hops and cost, with baselines."""
    from eval.multihop import evaluate_multihop, markdown, report_dict
    from retriever.api import Engine
    from retriever.generate import open_generator

    generator = open_generator(llm, cache or Path(out_dir) / "lm-cache.jsonl", model=llm_model, threads=threads)
    report = evaluate_multihop(Engine.open(engine_dir), _dataset(dataset, data_dir, False), split, generator,
                               out_dir, limit, _split_kinds(systems), **_loop_settings(
                                   using, rerank, passages, candidates, max_hops, max_tokens, max_seconds, no_refine))
    if as_json:
        click.echo(json.dumps(report_dict(report), indent=2))
        return
    click.echo(markdown(report.dataset, report.split, report.questions, report.results, report.config["llm"]))
    click.echo(f"JSON, Markdown and traces written to {out_dir}/")


# --- learned sparse index (issue 3): training the document encoder, the comparison table ---
@train.command("sparse")
@click.argument("engine_dir", type=click.Path(file_okay=False))
@click.option("--dataset", required=True, help="Dataset whose corpus (and qrels splits) to train on.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Checkpoints (best/, last/), training.json and curves.png go here; an existing run resumes.")
@click.option("--regime", type=click.Choice(["label-free", "supervised"]), default="supervised", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any training setting (retriever.train.sparse.train.TrainSettings), e.g. steps=600; repeatable.")
@data_dir_option
def train_sparse(engine_dir, dataset, out_dir, regime, overrides, data_dir) -> None:
    """Fine-tune the inference-free document encoder; ENGINE_DIR holds (or gets) the teacher indexes."""
    from retriever.train.sparse.train import run_training

    options = dict(item.split("=", 1) for item in overrides if "=" in item)
    if len(options) != len(overrides):
        raise click.UsageError("--set takes KEY=VALUE")
    report = run_training(engine_dir, dataset, out_dir, {"regime": regime, **options}, data_dir)
    best = max((e for e in report["evaluations"] if e.get("saved")), key=lambda e: e["step"], default=None)
    click.echo(json.dumps({"best": best, "baseline": report["evaluations"][0] if report["evaluations"] else None,
                           "train_seconds": round(report["train_seconds"], 1)}, indent=2))
    click.echo(f"model: {Path(out_dir) / 'best'}; curves: {Path(out_dir) / 'curves.png'}")


@eval_group.command("sparse")
@click.argument("engine_dir", type=click.Path(file_okay=False))
@click.option("--dataset", required=True, help="Dataset name or directory in BEIR layout.")
@click.option("--split", default="test", show_default=True)
@click.option("--model", "models", multiple=True, metavar="LABEL=DIR",
              help="A trained document encoder to index and compare, e.g. supervised=work/sparse/nf-sup/best.")
@click.option("--settings", default="", help="Extra sparse index settings for every sparse index, e.g. max_length=256.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/sparse", show_default=True)
@data_dir_option
def eval_sparse(engine_dir, dataset, split, models, settings, out_dir, data_dir) -> None:
    """BM25, dense, zero-shot and trained sparse indexes: nDCG@10, R@100, non-zeros per doc, index size."""
    from eval.sparse import compare, markdown

    pairs = dict(item.split("=", 1) for item in models if "=" in item)
    if len(pairs) != len(models):
        raise click.UsageError("--model takes LABEL=DIR")
    data = _dataset(dataset, data_dir, False)
    rows = compare(engine_dir, data, pairs, out_dir, split, settings)
    click.echo(markdown(data.name, split, rows))
    click.echo(f"runs, JSON and Markdown written to {out_dir}/")


# --- reranking (issue 6): the cross-encoder, the RL policy, reranked evaluations ---
@train.command("reranker")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="The model (or policy) directory to write; checkpoints go to OUT.train/ and a rerun resumes.")
@click.option("--rl", is_flag=True, help="Train the reranking policy with reinforcement learning (needs --cross).")
@click.option("--source", "sources", multiple=True, metavar="DATASET:SPLIT:ENGINE_DIR",
              help="Cross-encoder training data; repeatable (default: nfcorpus:train:work/nfcorpus and "
                   "hotpotqa-distractor:dev:work/hotpotqa). With --rl: one source, e.g. hotpotqa-distractor:dev:work/hotpotqa.")
@click.option("--cross", "cross_dir", type=click.Path(file_okay=False), default=None,
              help="With --rl: the cross-encoder whose scores the policy reads.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Any training setting (CrossTrainSettings, or RLSettings with --rl), e.g. max_steps=300; repeatable.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@data_dir_option
def train_reranker(out_dir, rl, sources, cross_dir, overrides, overwrite, data_dir) -> None:
    """Fine-tune the cross-encoder reranker from MiniLM, or (--rl) train the policy that orders and stops."""
    from retriever.train.rerank.training import train_reranker as run

    options = dict(item.split("=", 1) for item in overrides if "=" in item)
    if len(options) != len(overrides):
        raise click.UsageError("--set takes KEY=VALUE")
    summary = run(out_dir, rl, list(sources), cross_dir, options, data_dir, overwrite)
    click.echo(json.dumps(summary, indent=2))


@eval_group.command("rerank")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", default="hotpotqa-distractor", show_default=True)
@click.option("--split", default="test", show_default=True)
@click.option("--rerank", "reranks", multiple=True, required=True, help="Reranker spec; repeatable.")
@click.option("--using", default="hybrid", show_default=True, help="First stage (index name or fusion spec).")
@click.option("--candidates", default=30, show_default=True, help="Hits the reranker sees (plain and per hop).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["plain", "loop"]), default=("plain", "loop"),
              show_default=True, help="Rerank one retrieval, or select evidence inside the no-LLM loop.")
@click.option("--limit", default=None, type=int, help="Only the first N questions of the split.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/rerank", show_default=True)
@data_dir_option
def eval_rerank(engine_dir, dataset, split, reranks, using, candidates, modes, limit, out_dir, data_dir) -> None:
    """Both-gold recall, answer containment and documents passed per reranker, plain and in the no-LLM loop."""
    from eval.rerank import evaluate_selection, markdown
    from retriever.api import Engine

    report = evaluate_selection(Engine.open(engine_dir), _dataset(dataset, data_dir, False), split, list(reranks),
                                using, candidates, list(modes), limit, out_dir)
    click.echo(markdown(report))
    click.echo(f"JSON and Markdown written to {out_dir}/")


def _dataset(name: str, data_dir: str | None, download: bool):
    from retriever.core.datasets import load_dataset

    return load_dataset(name, data_dir=data_dir, download=download)


if __name__ == "__main__":
    main()
