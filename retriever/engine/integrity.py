"""Integrity of an engine directory: every file checked against its manifest's checksum.

Every corpus and index directory's ``manifest.json`` lists its files with their size and
sha256. Opening checks sizes only (one ``stat`` per file; corpus parts are also hashed,
once per process, before a document is served); :func:`verify` reads every byte
(``retriever index verify ENGINE``).
"""

from __future__ import annotations

from pathlib import Path

from retriever.core.corpus import Corpus
from retriever.core.errors import RetrieverError
from retriever.core.storage import read_manifest, verify_files
from retriever.engine.state import read_state


def verify(path: str | Path) -> tuple[int, list[str]]:
    """Check every file of the live generation of the engine ``path``.

    Returns:
        The number of files checked and the problems found (empty when the engine is intact).
    """
    path = Path(path)
    state = read_state(path)
    checked, problems = 0, []
    for directory in [state["corpus"], *state["indexes"].values()]:
        try:
            manifest = read_manifest(path / directory)
        except RetrieverError as e:
            problems.append(str(e))
            continue
        checked += len(manifest.get("files") or {})
        problems += verify_files(path / directory, manifest)
    if not problems:
        try:
            problems += Corpus.open(path / state["corpus"]).verify()
        except RetrieverError as e:
            problems.append(str(e))
    return checked, problems
