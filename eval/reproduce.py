"""The reproducibility table as data: expected scores per (dataset, system), checked with a tolerance.

``eval/reproductions.yaml`` lists rows like::

    - dataset: nfcorpus
      split: test
      indexes: [bm25]            # index specs the engine needs
      system: bm25               # an index name or a fusion spec
      expected: {nDCG@10: 0.3218, R@100: 0.2457}
      tolerance: 0.003
      depth: 1000                # optional: per-index depth before fusion (default: the engine's)
      reference: Anserini BEIR flat (published)

``retriever eval check`` builds (or reuses) one engine per dataset under a work
directory, evaluates every row and prints OK / FAIL; the README's results table
is generated from the same file with ``retriever eval table --readme README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from eval.beir import evaluate
from retriever.core.datasets import load_dataset
from retriever.core.metrics import parse_measures
from indexes.base import canonical_spec, parse_index_spec
from retriever.api import Engine
from retriever.engine.state import STATE
from retriever.core.errors import InputError

TABLE = Path(__file__).with_name("reproductions.yaml")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass
class Row:
    """One row of the table, and after a check, what was measured."""

    dataset: str
    split: str
    indexes: list[str]
    system: str
    expected: dict[str, float]
    tolerance: float
    reference: str = ""
    depth: int | None = None
    measured: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return self.measured is not None and all(
            abs(self.measured[m] - v) <= self.tolerance for m, v in self.expected.items())


def load_table(path: str | Path | None = None) -> list[Row]:
    """Read and validate the reproducibility table."""
    path = Path(path or TABLE)
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f) or []
    rows = []
    for number, item in enumerate(raw, start=1):
        try:
            rows.append(Row(dataset=item["dataset"], split=item.get("split", "test"), indexes=list(item["indexes"]),
                            system=item["system"], expected={k: float(v) for k, v in item["expected"].items()},
                            tolerance=float(item["tolerance"]), reference=item.get("reference", ""),
                            depth=int(item["depth"]) if item.get("depth") is not None else None))
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"row {number} is incomplete or malformed ({e})", str(path)) from None
    return rows


def check(rows: Sequence[Row], work_dir: Path, only: Sequence[str] = (), data_dir: str | None = None,
          echo: Callable[[str], Any] = print) -> list[Row]:
    """Measure every selected row; print one OK / FAIL line per row; return the rows."""
    selected = [r for r in rows if not only or r.dataset in only or r.system in only]
    for dataset_name in dict.fromkeys(r.dataset for r in selected):
        group = [r for r in selected if r.dataset == dataset_name]
        dataset = load_dataset(dataset_name, data_dir=data_dir)
        engine = _engine(work_dir / dataset_name, dataset, [s for r in group for s in r.indexes])
        for row in group:
            result = evaluate(engine, dataset, row.split, [row.system], depth=row.depth,
                              measures=parse_measures(list(row.expected)))[0]
            row.measured = {m: result.metrics[m] for m in row.expected}
            cells = "  ".join(f"{m} {row.measured[m]:.4f} (expected {v:.4f})" for m, v in row.expected.items())
            echo(f"{'OK  ' if row.ok else 'FAIL'}  {row.dataset}/{row.split}  {row.system}  {cells}  ±{row.tolerance}")
    return selected


def markdown(rows: Sequence[Row]) -> str:
    """The table as Markdown: expected nDCG@10 / R@100 per row."""
    measures = list(dict.fromkeys(m for r in rows for m in r.expected))
    lines = ["| dataset | split | system | " + " | ".join(measures) + " | reference |",
             "|---|---|---|" + "---:|" * len(measures) + "---|"]
    for r in rows:
        cells = " | ".join(f"{r.expected[m]:.4f}" if m in r.expected else "" for m in measures)
        lines.append(f"| {r.dataset} | {r.split} | `{r.system}` | {cells} | {r.reference} |")
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, rows: Sequence[Row]) -> None:
    """Replace the text between the results markers of ``readme`` with :func:`markdown`."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise InputError(f"no {BEGIN} ... {END} block to replace", str(readme))
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{BEGIN}\n{markdown(rows)}{END}{tail}", encoding="utf-8")


def _engine(path: Path, dataset, specs: Sequence[str]) -> Engine:
    """Open the engine at ``path`` (building it, or the indexes it lacks, as needed)."""
    wanted = {}
    for spec in specs:
        name, kind, settings = parse_index_spec(spec)
        wanted[name] = (spec, canonical_spec(name, kind, settings))
    if not (path / STATE).exists():
        return Engine.build(path, dataset.documents(), [spec for spec, _ in wanted.values()])
    engine = Engine.open(path)
    stale = [spec for name, (spec, canon) in wanted.items() if engine.specs.get(name) != canon]
    if stale:
        engine.build_indexes(stale, overwrite=True)
    return engine
