"""The ``retriever`` command line: a thin layer over the Python API.

Groups by verb: ``index`` (build, add, info), ``search``, ``ask``, ``eval`` (beir, check,
table, ...), ``train``, ``data`` (prepare), ``bench``. Every long step shows a progress bar;
``--json`` prints machine-readable output; ``-v`` / ``-q`` set the logging level. Flags keep
one meaning across commands (see :mod:`retriever.commands.options`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from retriever.commands.options import data_dir_option, depth_option, json_option, parse_pairs, setup_logging
from retriever.core.errors import RetrieverError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


class _Group(click.Group):
    """Turns every error into one ``Error:`` line and exit status 1 (usage errors: 2).

    The package's typed errors and operating-system errors (a full disk, a missing file)
    print their message; anything else prints its type and message. ``--debug`` (or
    ``RETRIEVER_DEBUG=1``) lets the traceback through instead.
    """

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt):
            raise
        except Exception as e:
            if ctx.find_root().params.get("debug") or os.environ.get("RETRIEVER_DEBUG") == "1":
                raise
            raise click.ClickException(_one_line(e)) from None


def _one_line(error: Exception) -> str:
    """The message of ``error`` on one line; unexpected types are named, with a pointer to ``--debug``."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, (RetrieverError, FileExistsError)):
        return " ".join(lines) or type(error).__name__
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or (lines[0] if lines else type(error).__name__)}{where}"
    first = lines[0][:300] if lines else ""
    return f"{type(error).__name__}: {first} (rerun with --debug for the traceback)"


def _split_kinds(value: str | None) -> list[str]:
    return [k.strip() for k in value.split(",") if k.strip()] if value else []


def _int_list(value: str, flag: str, low: int) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; a usage error names the flag when an item is no integer >= ``low``."""
    try:
        numbers = [int(item) for item in value.split(",") if item.strip()]
    except ValueError:
        raise click.UsageError(f"{flag} takes comma-separated integers, got {value!r}") from None
    if not numbers or min(numbers) < low:
        raise click.UsageError(f"{flag} takes comma-separated integers >= {low}, got {value!r}")
    return numbers


download_option = click.option("--download", is_flag=True, help="Allow downloading a missing dataset or model.")


def _ray_options(command):
    """``--workers N [--ray-address ADDR]``: shard the step over Ray (without them Ray is not imported)."""
    command = click.option("--ray-address", default=None,
                           help="Ray cluster to join (default $RAY_ADDRESS, else a local one).")(command)
    return click.option("--workers", default=None, type=click.IntRange(min=1),
                        help="Shard the corpus over N Ray workers (pip install 'retriever[ray]').")(command)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(package_name="retriever")
@click.option("--debug", is_flag=True, help="Show the traceback of an error (also RETRIEVER_DEBUG=1).")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Errors only, and no progress bars (sets RETRIEVER_QUIET=1).")
def main(debug: bool, verbose: int, quiet: bool) -> None:
    """retriever: learned sparse, dense and generative indexes, fused; evaluated on BEIR.

    \b
    Example:
      retriever index build work/nfcorpus --dataset nfcorpus --kinds bm25,dense
      retriever search work/nfcorpus "vitamin D and bone health" --using "rrf(bm25,dense)"

    \b
    Environment:
      RETRIEVER_DATA            a data root (after --data-dir, before ../shared/data)
      RETRIEVER_QUIET=1         no progress bars (also the model-loading ones); -q sets it
      RETRIEVER_ALLOW_DOWNLOAD  =1 allows model / dataset downloads (as --download)
      RETRIEVER_JVM_HEAP        Java heap for Lucene, e.g. 4g
      RETRIEVER_FAISS_CPU       =1 keeps FAISS on the CPU when a GPU is visible
      RETRIEVER_CHECKPOINTS     where long builds keep resumable checkpoints
      RETRIEVER_ENCODE_CACHE    a cache of encoded texts shared by generative builds
      RETRIEVER_DEBUG=1         show tracebacks (as --debug)
      OPENAI_API_KEY            the key sent to an http(s) --llm endpoint
    """
    setup_logging(verbose, quiet)


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
@json_option
def index_build(engine_dir, dataset, corpus, kinds, specs, overwrite, data_dir, download, workers, ray_address,
                as_json) -> None:
    """Build ENGINE_DIR; if it already holds an engine, add the given indexes to it.

    With --workers N the indexes are built as shards on a Ray cluster and merged.

    \b
    Example:
      retriever index build work/nfcorpus --dataset nfcorpus --kinds bm25,dense
      retriever index build work/nfcorpus --index "hnsw=dense(factory=HNSW32)"
      retriever index build work/big --corpus big.jsonl --kinds bm25,dense --workers 4
    """
    from retriever.api import Engine
    from retriever.engine.state import STATE

    if download:
        import os

        os.environ["RETRIEVER_ALLOW_DOWNLOAD"] = "1"
    wanted = _split_kinds(kinds) + list(specs)
    if (Path(engine_dir) / STATE).exists() and (dataset or corpus) and not overwrite:
        raise click.UsageError(f"{engine_dir} already holds an engine: --dataset/--corpus would be ignored. Drop them "
                               f"to build more indexes over its corpus, use `retriever index add` to add documents, "
                               f"or pass --overwrite to replace the engine")
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
    if as_json:
        click.echo(json.dumps({"path": str(engine.path), "documents": len(engine.corpus), "indexes": engine.names}))
        return
    click.echo(f"{engine.path}: {len(engine.corpus)} documents; indexes: {', '.join(engine.names)}")


@index.command("add")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("documents", type=click.Path(exists=True, dir_okay=False))
@_ray_options
@json_option
def index_add(engine_dir, documents, workers, ray_address, as_json) -> None:
    """Append the documents of a BEIR-style JSONL file to the corpus and every index.

    \b
    Example:
      retriever index add work/nfcorpus new-documents.jsonl
      retriever index add work/big more.jsonl --workers 4 --ray-address auto
    """
    from retriever.api import Engine

    if workers:
        from retriever.distributed.build import add

        added = add(engine_dir, documents, workers, ray_address)
        engine = Engine.open(engine_dir)
    else:
        engine = Engine.open(engine_dir)
        added = engine.add(documents)
    if as_json:
        click.echo(json.dumps({"added": added, "documents": len(engine.corpus)}))
        return
    click.echo(f"added {added} documents; {len(engine.corpus)} in total")


@index.command("verify")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@json_option
def index_verify(engine_dir, as_json) -> None:
    """Check every file of ENGINE_DIR against its manifest checksum; exit 1 on damage.

    \b
    Example:
      retriever index verify work/nfcorpus
    """
    from retriever.engine.integrity import verify

    checked, problems = verify(engine_dir)
    if as_json:
        click.echo(json.dumps({"engine": str(engine_dir), "checked": checked, "problems": problems}, indent=2))
    else:
        for problem in problems:
            click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{engine_dir}: {len(problems)} damaged or missing file(s) of {checked}; "
                                   f"rebuild the engine (or restore it from a copy)")
    click.echo(f"{engine_dir}: {checked} files match their checksums")


@index.command("info")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
def index_info(engine_dir) -> None:
    """Print the engine's corpus and index manifests (always JSON).

    \b
    Example:
      retriever index info work/nfcorpus
    """
    from retriever.api import Engine

    engine = Engine.open(engine_dir)
    info = {"path": str(engine.path), "corpus": engine.corpus.manifest,
            "indexes": {name: idx.manifest for name, idx in engine.indexes.items()}}
    click.echo(json.dumps(info, indent=2))


@main.command()
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("query", required=False)
@click.option("--topics", help="Batch search instead of QUERY: a TSV file (qid<TAB>text), a BEIR queries.jsonl, "
                               "or DATASET[:SPLIT] (e.g. scifact:test); needs --output.")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="With --topics: the TREC run file.")
@click.option("-k", type=click.IntRange(min=1), default=None, help="Hits per query [default: 10; 1000 with --topics].")
@depth_option
@click.option("--using", default=None, help="Index name, 'hybrid', or a fusion spec like 'rrf(bm25,dense)'.")
@click.option("--run-tag", default=None, help="With --topics: the run file's tag column [default: --using].")
@data_dir_option
@json_option
def search(engine_dir, query, topics, output, k, depth, using, run_tag, data_dir, as_json) -> None:
    """Search ENGINE_DIR for QUERY, or every topic of --topics into a TREC run file.

    \b
    Example:
      retriever search work/nfcorpus "statins and breast cancer" -k 5 --using bm25
      retriever search work/scifact --topics scifact:test --output runs/scifact-rrf.trec --using "rrf(bm25,dense)"
    """
    from retriever.api import Engine

    engine = Engine.open(engine_dir)
    if topics:
        if query or not output:
            raise click.UsageError("--topics takes no QUERY and needs --output")
        from eval.beir import run_topics
        from eval.runs import read_topics, write_run

        chosen = read_topics(topics, data_dir)
        system = using or str(engine.resolve(None))
        k = k or 1000
        run = run_topics(engine, chosen, system, k, depth)
        write_run(output, run, run_tag or system)
        summary = {"output": output, "queries": len(run), "k": k, "depth": depth, "using": system,
                   "tag": run_tag or system}
        click.echo(json.dumps(summary) if as_json else f"wrote {output}: {len(run)} queries, up to {k} hits each")
        return
    if not query or output or run_tag:
        raise click.UsageError("give QUERY, or --topics with --output (and optionally --run-tag)")
    hits = engine.search(query, k=k or 10, using=using, depth=depth)
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
@click.option("--dataset", "datasets", required=True, multiple=True,
              help="Dataset name, BEIR directory or ir_datasets id; repeatable. With several, ENGINE_DIR holds "
                   "one engine per dataset (ENGINE_DIR/<dataset>; a system an engine lacks is skipped with a "
                   "warning) and a cross-dataset table is written too.")
@click.option("--split", default="test", show_default=True)
@click.option("--using", "systems", multiple=True, help="Index name or fusion spec; repeatable [default: every index].")
@click.option("--metrics", default="nDCG@10,R@100,RR@10", show_default=True,
              help="ir-measures names, comma-separated, e.g. 'nDCG@10,R@1000,AP,P@5'.")
@click.option("--baseline", default=None,
              help="A system to test the others against (paired t-test and bootstrap, Holm-corrected).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results", show_default=True)
@depth_option
@click.option("--rerank", "reranks", multiple=True,
              help="Also rerank each system's top --candidates with this reranker spec, e.g. "
                   "'cross(path=work/models/cross-minilm,k=100)'; repeatable.")
@click.option("--candidates", default=100, show_default=True,
              help="With --rerank: hits the reranker sees (the run keeps what it returns).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots (cross-dataset bars, per-query differences).")
@json_option
@data_dir_option
def eval_beir(engine_dir, datasets, split, systems, metrics, baseline, out_dir, depth, reranks, candidates, no_plots,
              as_json, data_dir) -> None:
    """Evaluate systems of ENGINE_DIR on dataset splits (default nDCG@10, R@100, RR@10).

    Writes TREC runs, <dataset>-<split>.json / .md / .perquery.tsv, and with several
    datasets beir-<split>.json / .md (systems x datasets, plus the mean) and plots.

    \b
    Example:
      retriever eval beir work/nfcorpus --dataset nfcorpus --using bm25 --using "rrf(bm25,dense)" --baseline bm25
      retriever eval beir work --dataset nfcorpus --dataset scifact --using bm25 --using dense --baseline bm25
    """
    from eval.beir import evaluate, markdown_table, write_summary
    from retriever.api import Engine
    from retriever.core.metrics import parse_measures

    try:
        measures = parse_measures(_split_kinds(metrics))
    except (NameError, ValueError) as e:
        raise click.BadParameter(f"{metrics!r}: {e} (ir-measures names, e.g. nDCG@10,R@100,RR@10,AP)",
                                 param_hint="--metrics") from None
    by_dataset = {}
    for name in datasets:
        data = _dataset(name, data_dir, False)
        engine = Engine.open(_engine_for(Path(engine_dir), data.name, len(datasets)))
        chosen = list(systems) or engine.names
        if len(datasets) > 1:
            chosen = _available(engine, chosen, data.name)
        if reranks:
            from eval.rerank import evaluate_reranked

            results = evaluate_reranked(engine, data, split, chosen, list(reranks), out_dir, depth=depth,
                                        candidates=candidates, measures=measures, baseline=baseline)
        else:
            results = evaluate(engine, data, split, chosen, out_dir, depth=depth, measures=measures,
                               baseline=baseline)
        by_dataset[data.name] = results
        if not as_json:
            click.echo(markdown_table(data.name, split, results, baseline))
    if len(by_dataset) > 1 or (baseline and not no_plots):
        _, md_path = write_summary(Path(out_dir), split, by_dataset, baseline, plots=not no_plots)
        if not as_json and len(by_dataset) > 1:
            click.echo(md_path.read_text(encoding="utf-8"))
    if as_json:
        click.echo(json.dumps([{"dataset": d, **r.to_dict()} for d, rs in by_dataset.items() for r in rs], indent=2))
    else:
        click.echo(f"runs, JSON, Markdown and per-query values written to {out_dir}/")


def _available(engine, systems: list[str], dataset: str) -> list[str]:
    """The systems ``engine`` can run; the others are skipped with a warning (their table cells stay empty)."""
    import logging

    from retriever.core.errors import SpecError

    kept = []
    for system in systems:
        try:
            engine.resolve(system)
            kept.append(system)
        except SpecError as e:
            logging.getLogger("retriever.eval").warning("%s: skipping %s (%s)", dataset, system, e)
    return kept


def _engine_for(engine_dir: Path, dataset: str, datasets: int) -> Path:
    """ENGINE_DIR itself for one dataset when it is an engine, else ENGINE_DIR/<dataset>."""
    from retriever.core.errors import InputError
    from retriever.engine.state import STATE

    if datasets == 1 and (engine_dir / STATE).exists():
        return engine_dir
    if (engine_dir / dataset / STATE).exists():
        return engine_dir / dataset
    raise InputError(f"no engine for dataset {dataset!r}: expected {engine_dir / dataset} (build it with "
                     f"'retriever index build {engine_dir / dataset} --dataset {dataset}')")


@eval_group.command("check")
@click.option("--table", "table_path", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Reproducibility table (default: eval/reproductions.yaml).")
@click.option("--only", multiple=True, help="Only rows of this dataset or system; repeatable.")
@click.option("--work", "work_dir", type=click.Path(file_okay=False), default="work/check", show_default=True,
              help="Where engines for the checks are built (reused when present).")
@data_dir_option
@json_option
def eval_check(table_path, only, work_dir, data_dir, as_json) -> None:
    """Run every row of the reproducibility table; print OK / FAIL; exit 1 on a FAIL.

    \b
    Example:
      retriever eval check --only scifact
    """
    from dataclasses import asdict

    from eval.reproduce import check, load_table

    rows = check(load_table(table_path), Path(work_dir), only=only, data_dir=data_dir,
                 echo=(lambda line: None) if as_json else click.echo)
    if as_json:
        click.echo(json.dumps([{**asdict(row), "ok": row.ok} for row in rows], indent=2))
    if any(not row.ok for row in rows):
        sys.exit(1)


@eval_group.command("table")
@click.option("--table", "table_path", type=click.Path(dir_okay=False, exists=True), default=None)
@click.option("--readme", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Rewrite the results block of this README in place.")
@json_option
def eval_table(table_path, readme, as_json) -> None:
    """Print the reproducibility table as Markdown (or write it into a README).

    \b
    Example:
      retriever eval table --readme README.md
    """
    from dataclasses import asdict

    from eval.reproduce import load_table, markdown, update_readme

    rows = load_table(table_path)
    if as_json:
        click.echo(json.dumps([asdict(row) for row in rows], indent=2))
    elif readme:
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
@json_option
def eval_generative(engine_dir, dataset, split, systems, out_dir, data_dir, as_json) -> None:
    """nDCG@10, R@100, Hits@1/@10, ms/query, index size and build time per system of ENGINE_DIR.

    \b
    Example:
      retriever eval generative work/nfcorpus --dataset nfcorpus --using bm25 --using generative
    """
    from eval.generative import compare, markdown
    from retriever.api import Engine

    data = _dataset(dataset, data_dir, False)
    records = compare(Engine.open(engine_dir), data, split, list(systems), out_dir)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
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
@json_option
def eval_continual(dataset, spec, train_queries, holdout, seed, sam_rho, variants, work_dir, out_dir,
                   data_dir, as_json) -> None:
    """DSI++ forgetting: index 80% of a corpus, add 20%; old vs new quality against naive fine-tuning and a rebuild.

    Builds its own engines under --work, so --dataset has a default here.

    \b
    Example:
      retriever eval continual --dataset nfcorpus --train-queries train --variant replay=4
    """
    from eval.continual import markdown, run_continual, settings_from_spec

    payload = run_continual(dataset, Path(work_dir), Path(out_dir), settings_from_spec(spec), train_queries,
                            holdout, seed, sam_rho=sam_rho,
                            variants={v: settings_from_spec(f"generative({v})") for v in variants}, data_dir=data_dir)
    if as_json:
        click.echo(json.dumps(payload, indent=2, default=str))
        return
    click.echo(markdown(payload))
    click.echo(f"JSON and Markdown written to {out_dir}/")


@main.group(cls=_Group)
def train() -> None:
    """Train models: the learned sparse document encoder and the rerankers.

    (A generative index trains while it is built: retriever index build ... --index generative.)
    """


@main.group(cls=_Group)
def data() -> None:
    """Prepare datasets."""


@data.command("prepare")
@click.argument("name")
@click.option("--file", "source", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A multi-hop file in HotpotQA's distractor format to convert (default: the named set's file "
                   "under the data roots).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output directory  [default: data/NAME]")
@click.option("--hold-out", "held_out", default=None, metavar="SPLIT:SHARE",
              help="Also cut SPLIT in two by question type: SPLIT-fit and SPLIT-held (SHARE of it), e.g. dev:0.3, "
                   "to train on one part and choose settings on the other.")
@click.option("--hold-out-seed", default=7, show_default=True, help="Seed of the held-out draw.")
@data_dir_option
@json_option
def data_prepare(name, source, out_dir, held_out, hold_out_seed, data_dir, as_json) -> None:
    """Convert a multi-hop distractor file into BEIR layout (pooled corpus, queries, fixed splits).

    NAME is hotpotqa (hotpotqa-distractor), musique or 2wikimultihopqa, found under the data roots, or any
    name for the file given with --file. With --data-dir, hotpotqa reads the one distractor file there.

    \b
    Example:
      retriever data prepare musique
      retriever data prepare mine --file my_questions.jsonl --out data/mine
      retriever data prepare hotpotqa --hold-out dev:0.3 --out work/hpdata/hotpotqa-distractor
    """
    from retriever.core.datasets import DISTRACTOR_SETS, HOTPOT, distractor_to_beir, hold_out, hotpot_file, write_beir

    name = HOTPOT if name == "hotpotqa" else name
    if source is None and name not in DISTRACTOR_SETS:
        raise click.UsageError(f"unknown dataset {name!r}: give --file, or one of {', '.join(DISTRACTOR_SETS)}")
    if source is None and name == HOTPOT and data_dir:
        source = str(hotpot_file(data_dir))
    dataset = distractor_to_beir(Path(source), name) if source else _dataset(name, data_dir, False)
    if source and Path(dataset.source).resolve() != Path(source).resolve():
        raise click.ClickException(f"read {dataset.source}, not the file given ({source})")
    if held_out:
        split, _, share = held_out.rpartition(":")
        try:
            dataset = hold_out(dataset, split, float(share), hold_out_seed)
        except ValueError:
            raise click.BadParameter(f"expected SPLIT:SHARE, e.g. dev:0.3, got {held_out!r}", param_hint="--hold-out")
    out_dir = out_dir or f"data/{name}"
    write_beir(dataset, Path(out_dir))
    if as_json:
        click.echo(json.dumps({"read": dataset.source, "out": out_dir, "questions": len(dataset.queries),
                               "splits": {split: len(q) for split, q in sorted(dataset.qrels.items())}}))
        return
    sizes = ", ".join(f"{split} {len(q)}" for split, q in sorted(dataset.qrels.items()))
    documents = sum(1 for _ in dataset.documents())
    click.echo(f"read {dataset.source}")
    click.echo(f"wrote {out_dir}: {documents} documents, {len(dataset.queries)} questions ({sizes})")


@main.group(cls=_Group, invoke_without_command=True)
@click.option("--dataset", default="nfcorpus", show_default=True)
@click.option("--index", "specs", multiple=True, default=("bm25", "dense(factory=Flat)", "dense(factory=HNSW32)"),
              show_default=True, help="Index spec to benchmark; repeatable.")
@click.option("--queries", "query_count", default=200, show_default=True, help="Queries for latency.")
@click.option("--max-docs", default=None, type=click.IntRange(min=1), help="Index only the first N documents.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/bench", show_default=True)
@data_dir_option
@click.option("--scale", is_flag=True, help="Instead: cost as a synthetic corpus grows (--sizes, --scale-workers; "
              "--index defaults to bm25).")
@click.option("--sizes", default="10000,100000", show_default=True, help="With --scale: corpus sizes, comma-separated.")
@click.option("--scale-workers", default="0,1,2", show_default=True,
              help="With --scale: Ray worker counts to compare, comma-separated (0: single process, no Ray).")
@json_option
@click.pass_context
def bench(ctx, dataset, specs, query_count, max_docs, out_dir, data_dir, scale, sizes, scale_workers,
          as_json) -> None:
    """Benchmark build throughput, latency, QPS, size and peak RSS, as ratios to BM25.

    Builds its own indexes, so --dataset has a default here. With --scale: build cost, size,
    latency and memory on a synthetic corpus of each --sizes, single-process and over Ray workers.

    \b
    Example:
      retriever bench --dataset nfcorpus --index bm25 --index sparse --index "sparse(backend=seismic)"
      retriever bench --scale --index bm25 --sizes 10000,100000 --scale-workers 0,2
      retriever bench serve work/nfcorpus --requests 2500 --clients 8
    """
    from eval.bench import run_benchmark, split_specs

    if ctx.invoked_subcommand:
        return
    chosen = [s for spec in specs for s in split_specs(spec)]
    if scale:
        from eval.scale import run_scale

        if ctx.get_parameter_source("specs").name == "DEFAULT":
            chosen = ["bm25"]
        report = run_scale(chosen, _int_list(sizes, "--sizes", 1), _int_list(scale_workers, "--scale-workers", 0),
                           Path(out_dir))
        if as_json:
            click.echo((Path(out_dir) / "scale.json").read_text(encoding="utf-8"))
            return
        click.echo(report)
        return
    report = run_benchmark(dataset, chosen, Path(out_dir), query_count, max_docs, data_dir)
    if as_json:
        click.echo((Path(out_dir) / f"bench-{dataset}.json").read_text(encoding="utf-8"))
        return
    click.echo(report)


@bench.command("serve")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--using", "systems", multiple=True, default=("bm25", "rrf(bm25,dense)"), show_default=True)
@click.option("--requests", default=5000, show_default=True, help="Requests per system with concurrent clients.")
@click.option("--clients", default=8, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Server processes.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/bench-serve", show_default=True)
def bench_serve(engine_dir, systems, requests, clients, workers, out_dir) -> None:
    """Load-test `retriever serve` on loopback against in-process calls, with a concurrent writer.

    \b
    Example:
      retriever bench serve work/nfcorpus --using bm25 --using "rrf(bm25,dense)" --requests 5000 --clients 8
    """
    from retriever.serve.bench import run_serve_bench

    click.echo(run_serve_bench(engine_dir, systems, Path(out_dir), requests, clients, workers=workers))


@main.command()
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Other than loopback needs --token.")
@click.option("--port", default=8000, show_default=True)
@click.option("--workers", default=1, show_default=True, help="Server processes (each opens the engine).")
@click.option("--token", envvar="RETRIEVER_TOKEN", default=None, help="Bearer token for the API (or $RETRIEVER_TOKEN).")
@click.option("--insecure", is_flag=True, help="Allow a non-loopback --host without a token.")
@click.option("--allow-writes", is_flag=True, help="Expose POST /api/documents (needs --token).")
@click.option("--cors", "cors_origins", multiple=True, help="An origin allowed by CORS. Repeatable; default: none.")
@click.option("--llm", default=None, help="Language model for ask (as for `retriever ask`); omit: no-LLM mode.")
@click.option("--set", "limits", multiple=True, metavar="KEY=VALUE",
              help="A limit, e.g. max_k=100, timeout_s=30. Repeatable.")
@click.option("--ray", "on_ray", is_flag=True,
              help="ENGINE_DIR was built with --workers: fan searches out to Ray searcher actors, one per shard.")
@click.option("--ray-address", default=None, help="With --ray: the cluster to join (default $RAY_ADDRESS, else a local one).")
def serve(engine_dir, host, port, workers, token, insecure, allow_writes, cors_origins, llm, limits, on_ray,
          ray_address) -> None:
    """Serve ENGINE_DIR over HTTP: JSON API under /api, OpenAPI at /docs, a web page at /.

    \b
    Example:
      retriever serve work/nfcorpus --port 8000
      retriever serve work/nfcorpus --host 0.0.0.0 --token "$RETRIEVER_TOKEN" --allow-writes
      retriever serve work/big --ray --ray-address auto
    """
    from retriever.serve.run import serve as run, settings

    config = settings(host, port, token, insecure, allow_writes, cors_origins, llm, limits)
    if not on_ray:
        if ray_address:
            raise click.UsageError("--ray-address needs --ray")
        run(engine_dir, config, workers)
        return
    from retriever.distributed.search import DistributedEngine

    run(engine_dir, config, workers, opener=lambda path: DistributedEngine(path, address=ray_address))


@main.command()
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--llm", default=None, help="Language model for the ask tool; omit: no-LLM mode.")
def mcp(engine_dir, llm) -> None:
    """Serve ENGINE_DIR as MCP tools over stdio: search, get_document, ask.

    \b
    Example:
      retriever mcp work/nfcorpus
    """
    from retriever.serve.mcp_tools import run_stdio
    from retriever.serve.run import settings

    run_stdio(engine_dir, settings(llm=llm))


# --- multi-hop question answering (retriever ask, retriever eval multihop) ---

def _loop_options(command):
    """Options shared by `ask` and `eval multihop`: the model, the loop's settings and budgets."""
    options = [
        click.option("--llm", default=None, help="A .gguf file, a model directory, an http(s):// OpenAI-compatible "
                     "endpoint, or a spec like 'llamacpp(path=F.gguf)'; omit for the no-LLM mode."),
        click.option("--using", default="hybrid", show_default=True, help="Indexes to search (name or fusion spec)."),
        click.option("--rerank", default="top(k=5)", show_default=True, help="Evidence selector (reranker spec)."),
        click.option("--rescore", default=None, help="A reranker spec that re-orders each hop's hits, judged against "
                     "the question, before the evidence chains are built, e.g. 'cross(path=DIR,k=30,mix=0.5)'."),
        click.option("--passages", default=5, show_default=True, help="Most passages passed to the reader."),
        click.option("--candidates", default=30, show_default=True, help="Hits the reranker sees (per hop)."),
        click.option("--max-hops", default=4, show_default=True,
                     help="Most retrieval rounds per question (fewer when the question expects fewer hops)."),
        click.option("--max-tokens", default=8192, show_default=True, help="LM tokens per question."),
        click.option("--max-seconds", default=300.0, show_default=True, help="Seconds per question."),
        click.option("--no-refine", is_flag=True, help="Pass whole passages, not the useful sentences."),
        click.option("--reader", type=click.Choice(["direct", "reason"]), default="direct", show_default=True,
                     help="How the answer is read: one short-answer call, or a few sentences of reasoning first."),
        click.option("--choices", is_flag=True, help="Settle 'which ..., A or B?' by the passages' dates (born, died, "
                     "released), else map an answer naming neither A nor B to the one whose page mentions it."),
    ]
    for option in reversed(options[1:]):
        command = option(command)
    return options[0](_model_options(command))


def _model_options(command):
    """--llm-model, --llm-timeout and --threads: how the model named by --llm is run."""
    options = [
        click.option("--llm-model", default=None, help="Model name sent to an HTTP endpoint."),
        click.option("--llm-timeout", default=None, type=click.FloatRange(min=0, min_open=True),
                     help="Seconds before one HTTP LM request is abandoned (and retried) [default: 60]."),
        click.option("--threads", default=None, type=int, help="CPU threads for a local model."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _loop_settings(using, rerank, rescore, passages, candidates, max_hops, max_tokens, max_seconds,
                   no_refine, reader, choices) -> dict:
    from retriever.agent import Budget

    return {"using": using, "rerank": rerank, "rescore": rescore, "passages": passages, "candidates": candidates,
            "budget": Budget(max_hops, max_tokens, max_seconds), "refine_sentences": not no_refine, "reader": reader,
            "choices": choices}


@main.command()
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("question")
@_loop_options
@click.option("--cache", type=click.Path(dir_okay=False), default=None, help="LM-call cache file (JSONL).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None, help="Write the trace JSON here.")
@json_option
def ask(engine_dir, question, llm, llm_model, llm_timeout, threads, using, rerank, rescore, passages, candidates,
        max_hops, max_tokens, max_seconds, no_refine, reader, choices, cache, trace_path, as_json) -> None:
    """Answer QUESTION over ENGINE_DIR with the multi-hop loop; prints the answer and its citations.

    \b
    Example:
      retriever ask work/hotpotqa "Which band formed first, Oasis or Blur?" --llm http://localhost:8000/v1
    """
    from retriever.api import Engine
    from retriever.generate import open_generator

    generator = open_generator(llm, cache, model=llm_model, threads=threads, timeout=llm_timeout)
    answer = Engine.open(engine_dir).ask(question, generator, **_loop_settings(
        using, rerank, rescore, passages, candidates, max_hops, max_tokens, max_seconds, no_refine, reader,
        choices))
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
@click.option("--dataset", required=True, help="Dataset name or directory, e.g. hotpotqa-distractor.")
@click.option("--split", default="test", show_default=True)
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="A seeded sample of N questions of the split, stratified by question type (or hop count).")
@click.option("--systems", default="closed-book,single-shot,agent", show_default=True,
              help="Answer systems to compare, comma-separated: closed-book, single-shot, agent, and rule-agent "
                   "(the no-LLM loop's evidence, read once by the model).")
@_loop_options
@click.option("--cache", type=click.Path(dir_okay=False), default=None,
              help="LM-call cache (default OUT/lm-cache.jsonl); rerunning resumes from it.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/multihop", show_default=True)
@json_option
@data_dir_option
def eval_multihop(engine_dir, dataset, split, limit, systems, llm, llm_model, llm_timeout, threads, using, rerank,
                  rescore, passages, candidates, max_hops, max_tokens, max_seconds, no_refine, reader, choices, cache,
                  out_dir, as_json, data_dir) -> None:
    """Multi-hop QA on ENGINE_DIR: gold-document recall, EM / F1, hops and cost, with baselines.

    \b
    Example:
      retriever eval multihop work/hotpotqa --dataset hotpotqa-distractor --using "rrf(bm25,dense)" --limit 50
    """
    from eval.multihop import evaluate_multihop, markdown, report_dict
    from retriever.api import Engine
    from retriever.generate import open_generator

    generator = open_generator(llm, cache or Path(out_dir) / "lm-cache.jsonl", model=llm_model, threads=threads,
                               timeout=llm_timeout)
    report = evaluate_multihop(Engine.open(engine_dir), _dataset(dataset, data_dir, False), split, generator,
                               out_dir, limit, _split_kinds(systems), **_loop_settings(
                                   using, rerank, rescore, passages, candidates, max_hops, max_tokens, max_seconds,
                                   no_refine, reader, choices))
    if as_json:
        click.echo(json.dumps(report_dict(report), indent=2))
        return
    click.echo(markdown(report.dataset, report.split, report.questions, report.results, report.config["llm"],
                        report.groups))
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
    """Fine-tune the inference-free document encoder; ENGINE_DIR holds (or gets) the teacher indexes. Prints JSON.

    \b
    Example:
      retriever train sparse work/nfcorpus --dataset nfcorpus --out work/sparse/nf-sup --set steps=600
    """
    from retriever.train.sparse.train import run_training

    options = parse_pairs(overrides)
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
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="A sparse index setting for every sparse index, e.g. max_length=256; repeatable.")
@click.option("--baselines", default="bm25,dense", show_default=True,
              help="Baseline index specs to compare with, e.g. bm25,dense or bm25,rm3=bm25(rm3_docs=10).")
@click.option("--prune", default="", help="Query-term min_weight values whose quality cost to measure, e.g. 0,1,2.")
@click.option("--lexical", default="", help="Also index each sparse system with lexical=b (learned + b x word-piece "
                                             "BM25 in one index) for these b, e.g. 1.")
@click.option("--lexical-sweep", "sweep", default="", help="Score learned + b x word-piece BM25 for these b from "
                                                           "each sparse index's stored vectors (choose b on dev).")
@click.option("--feedback", "feedback", multiple=True, metavar="KNOBS",
              help="Pseudo-relevance feedback knobs to measure against no feedback (quality and p50), e.g. "
                   "prf_docs=3,prf_terms=30,prf_weight=0.25; repeatable.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/sparse", show_default=True)
@data_dir_option
@json_option
def eval_sparse(engine_dir, dataset, split, models, overrides, baselines, prune, lexical, sweep, feedback, out_dir,
                data_dir, as_json) -> None:
    """BM25, dense, zero-shot and trained sparse indexes: nDCG@10, R@100, non-zeros per doc, index size.

    \b
    Example:
      retriever eval sparse work/nfcorpus --dataset nfcorpus --model supervised=work/sparse/nf-sup/best
      retriever eval sparse work/nfcorpus --dataset nfcorpus --baselines bm25 --prune 0,1,2 --set max_terms=16
      retriever eval sparse work/nfcorpus --dataset nfcorpus --split dev --baselines bm25 --lexical-sweep 0,1,2
      retriever eval sparse work/nfcorpus --dataset nfcorpus --baselines bm25 --feedback prf_docs=3
    """
    from eval.bench import split_specs
    from eval.sparse import compare, markdown
    from indexes.sparse.feedback import KNOBS
    from indexes.sparse.index import SCHEMA

    pairs = parse_pairs(models, "--model", "LABEL=DIR")
    settings = ",".join(f"{key}={value}" for key, value in parse_pairs(overrides).items())
    data = _dataset(dataset, data_dir, False)
    floors, weights = _numbers(prune, "--prune"), _numbers(lexical, "--lexical")
    rows = compare(engine_dir, data, pairs, out_dir, split, settings,
                   split_specs(baselines), floors, weights,
                   _numbers(sweep, "--lexical-sweep"), [_feedback_knobs(item, KNOBS, SCHEMA) for item in feedback])
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(markdown(data.name, split, rows))
    click.echo(f"runs, JSON and Markdown written to {out_dir}/")


def _feedback_knobs(item: str, names: tuple[str, ...], schema) -> dict:
    knobs = parse_pairs([part for part in item.split(",") if part.strip()], "--feedback", "KEY=VALUE,...")
    if not knobs or set(knobs) - set(names):
        raise click.UsageError(f"--feedback takes {', '.join(names)} (KEY=VALUE, comma-separated), got {item!r}")
    return schema.parse(knobs, fill=False)


def _numbers(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.UsageError(f"{option} takes comma-separated numbers") from None


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
@click.option("--llm", default=None, help="With --rl and --set reader_f1=W: the reader whose answer F1 enters the "
              "reward (a .gguf file, a model directory, an http(s):// endpoint or a spec, as for eval multihop).")
@_model_options
@click.option("--cache", type=click.Path(dir_okay=False), default=None,
              help="LM-call cache (default OUT.train/lm-cache.jsonl); a rerun reads each passed set once.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@data_dir_option
def train_reranker(out_dir, rl, sources, cross_dir, overrides, llm, llm_model, llm_timeout, threads, cache, overwrite,
                   data_dir) -> None:
    """Fine-tune the cross-encoder reranker from MiniLM, or (--rl) train the policy that orders and stops. Prints JSON.

    \b
    Example:
      retriever train reranker --out work/models/cross-minilm --source nfcorpus:train:work/nfcorpus
      retriever train reranker --rl --cross work/models/cross-minilm --out work/models/rl-f1 \\
          --set reader_f1=1 --llm ~/.cache/retriever-models/qwen2.5-coder-0.5b-instruct.gguf --threads 1
    """
    from retriever.train.rerank.training import train_reranker as run

    options = parse_pairs(overrides)
    summary = run(out_dir, rl, list(sources), cross_dir, options, data_dir, overwrite, llm, cache,
                  {"threads": threads, "model": llm_model, "timeout": llm_timeout})
    click.echo(json.dumps(summary, indent=2))


@eval_group.command("rerank")
@click.argument("engine_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--dataset", required=True, help="Dataset name or directory, e.g. hotpotqa-distractor.")
@click.option("--split", default="test", show_default=True)
@click.option("--rerank", "reranks", multiple=True, required=True, help="Reranker spec; repeatable.")
@click.option("--using", default="hybrid", show_default=True, help="First stage (index name or fusion spec).")
@click.option("--candidates", default=30, show_default=True, help="Hits the reranker sees (per hop in the loop).")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["plain", "loop"]), default=("plain", "loop"),
              show_default=True, help="Rerank one retrieval, or select evidence inside the no-LLM loop.")
@click.option("--limit", default=None, type=click.IntRange(min=1),
              help="A seeded sample of N questions of the split, stratified by question type.")
@click.option("--llm", default=None, help="The reader that answers from each passed set (a .gguf file, a model "
              "directory, an http(s):// endpoint or a spec, as for eval multihop); omit for no answers.")
@_model_options
@click.option("--cache", type=click.Path(dir_okay=False), default=None,
              help="LM-call cache (default OUT/lm-cache.jsonl); a rerun reads each passed set once.")
@click.option("--baseline", default=None, help="One of the --rerank specs: the others get paired differences "
              "(F1, EM, both gold passed) from it, with 95% bootstrap intervals.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="results/rerank", show_default=True)
@data_dir_option
@json_option
def eval_rerank(engine_dir, dataset, split, reranks, using, candidates, modes, limit, llm, llm_model, llm_timeout,
                threads, cache, baseline, out_dir, data_dir, as_json) -> None:
    """Both-gold recall, answer containment and documents passed per reranker, plain and in the no-LLM loop;
    with --llm, the reader's EM / F1 on each passed set.

    \b
    Example:
      retriever eval rerank work/hotpotqa --dataset hotpotqa-distractor --rerank "top(k=5)" --limit 100
      retriever eval rerank work/hotpotqa --dataset hotpotqa-distractor --mode loop --limit 200 \\
          --rerank "top(k=3)" --rerank "top(k=5)" --rerank "rl(path=work/models/rl-policy)" --baseline "top(k=5)" \\
          --llm ~/.cache/retriever-models/qwen2.5-coder-0.5b-instruct.gguf --threads 1
    """
    from eval.rerank import evaluate_selection, markdown
    from retriever.api import Engine

    report = evaluate_selection(Engine.open(engine_dir), _dataset(dataset, data_dir, False), split, list(reranks),
                                using, candidates, list(modes), limit, out_dir, llm, cache, baseline,
                                {"threads": threads, "model": llm_model, "timeout": llm_timeout})
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    click.echo(markdown(report))
    click.echo(f"JSON and Markdown written to {out_dir}/")


def _dataset(name: str, data_dir: str | None, download: bool):
    from retriever.core.datasets import load_dataset

    return load_dataset(name, data_dir=data_dir, download=download)


if __name__ == "__main__":
    main()
