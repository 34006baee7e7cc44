"""The index protocol and the index-directory contract.

Every index kind is a subclass of :class:`Index` registered in :data:`KINDS`. An
index directory holds ``manifest.json`` (kind, format version, settings, document
count, corpus checksum, build time) and the kind's own files; it is written under
a temporary sibling and renamed into place only when complete.

Every kind declares its settings as a :class:`~retriever.core.settings.Schema`
(``schema``); :func:`parse_index_spec` checks a spec against it (and the kind's own
:meth:`Index.check_settings`) before anything is written, so ``bm25(k1=abc)`` or
``dense(factory=Nope)`` fail at once with an error naming the setting.

Every kind answers ``search(queries, k)`` with one ranked ``[(doc_id, score), ...]``
list per query, best first, so fusion, reranking and evaluation never care which
kind produced a result.

Sharding (``retriever.distributed``): a kind whose :attr:`Index.combine` is ``"merge"``
is built as shards, each by :meth:`Index.write_shard` over a contiguous range of the
corpus made of whole :attr:`Index.shard_block` blocks, and the shards are combined by
:meth:`Index.merge_shards` into one index equal to a single-process build; any other
kind is built whole on one worker. A merged index keeps its shards (``shards/NNNNN``,
each a complete index directory) for fan-out search, where the query side is prepared
once (:meth:`Index.prepare_queries`) and every shard scores it
(:meth:`Index.search_prepared`).
"""

from __future__ import annotations

import importlib
import os
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from retriever.core.corpus import Corpus, Document
from retriever.core.errors import IndexFormatError, MissingResourceError, RetrieverError, SpecError
from retriever.core.settings import Schema
from retriever.core.specs import Spec, parse_spec
from retriever.core.storage import check_sizes, link_tree, read_manifest, staging_dir, write_manifest
from retriever.core.types import Ranking


# kind -> (module, class, the pip extra that provides its dependencies). A new kind is one module
# under indexes/ with an Index subclass plus its line here; nothing else dispatches on kinds.
KINDS: dict[str, tuple[str, str, str]] = {
    "bm25": ("indexes.bm25", "BM25Index", "retriever"),
    "dense": ("indexes.dense", "DenseIndex", "retriever"),
    "sparse": ("indexes.sparse", "SparseIndex", "retriever"),
    "generative": ("indexes.generative", "GenerativeIndex", "retriever"),
}


class Index(ABC):
    """An index over a corpus, living in one directory.

    Subclasses declare ``kind`` and ``schema`` (their settings) and implement
    :meth:`write` (build into an empty directory), :meth:`search`, and
    :meth:`write_extended` (a new version with more documents). Settings that define
    the index are persisted in the manifest; per-call knobs (threads, nprobe, beam
    width) are keyword arguments of :meth:`search`. Optional hooks have a default
    here: :meth:`check_settings` (checks beyond the schema) and
    :meth:`benchmark_extras` (kind-specific figures for ``retriever bench``).
    """

    kind: ClassVar[str]
    schema: ClassVar[Schema]
    format_version: ClassVar[int] = 1
    #: How shards combine: ``"merge"`` (built per shard, merged by :meth:`merge_shards`) or
    #: ``"single"`` (the whole index is built by one worker, e.g. a trained generative model).
    combine: ClassVar[str] = "single"
    #: Shard boundaries fall on multiples of this many documents (the encoders' length-sorting
    #: window), so every document is encoded in the same batch as in a single-process build.
    shard_block: ClassVar[int] = 1
    #: A shard's scores do not depend on the other shards (no collection statistics), so the
    #: merged top-k of a fan-out search equals the single index's top-k.
    shard_independent_scores: ClassVar[bool] = False
    #: Building runs a neural encoder (a sharded build asks the cluster for a GPU per task).
    uses_accelerator: ClassVar[bool] = False
    #: Persisted settings fixed at the first build (e.g. a reference length): the shards of a
    #: sharded add are given the live index's values.
    pinned_settings: ClassVar[tuple[str, ...]] = ()
    #: Search knobs of a feedback round (:meth:`feedback_docs`); a fan-out consumes them on the driver.
    feedback_knobs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, directory: Path, manifest: dict):
        self.directory = Path(directory)
        self.manifest = manifest
        self.settings: dict[str, Any] = manifest.get("settings", {})

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The typed, complete settings of a new index from a spec's ``settings``; cheap (no model loaded).

        Raises:
            SettingError: an unknown setting or a bad value, naming it.
        """
        return cls.schema.parse(settings)

    @classmethod
    @abstractmethod
    def write(cls, directory: Path, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        """Build the index for ``corpus`` into the empty ``directory``.

        Args:
            settings: the output of :meth:`check_settings` (typed, defaults filled in).

        Returns:
            The complete settings to persist.
        """

    @abstractmethod
    def search(self, queries: Sequence[str], k: int = 10, **knobs: Any) -> list[Ranking]:
        """Return the top ``k`` ``(doc_id, score)`` pairs for each query, best first."""

    @abstractmethod
    def write_extended(self, directory: Path, docs: Sequence[Document]) -> dict[str, Any]:
        """Write this index plus ``docs`` into the empty ``directory``; self is unchanged.

        Returns:
            The settings to persist for the new version.
        """

    @classmethod
    def shard_settings(cls, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings every shard of a first sharded build over ``corpus`` is given: ``settings`` plus what
        only the whole corpus determines (e.g. a reference length), computed once by the driver."""
        return settings

    @classmethod
    def write_shard(cls, directory: Path, corpus: Corpus, settings: dict[str, Any]) -> dict[str, Any]:
        """Build the shard of a sharded build over ``corpus`` (a :meth:`Corpus.view`) into ``directory``."""
        return cls.write(directory, corpus, settings)

    @classmethod
    def merge_shards(cls, directory: Path, shards: Sequence["Index"], settings: dict[str, Any],
                     base: "Index | None" = None) -> dict[str, Any]:
        """Combine ``shards`` (in corpus order) into the empty ``directory``; kinds with ``combine="merge"``.

        Args:
            directory: where the merged index goes.
            shards: the shard indexes, in corpus row order.
            settings: the checked settings (as given to :meth:`write_shard`).
            base: for an ``add``, the live index the shards' documents are appended to.

        Returns:
            The settings to persist.
        """
        raise NotImplementedError(f"{cls.kind} indexes are built by one worker (combine={cls.combine!r})")

    def prepare_queries(self, queries: Sequence[str]) -> Any:
        """The query side of a fan-out search, computed once and sent to every shard (default: the texts)."""
        return list(queries)

    def search_prepared(self, prepared: Any, k: int = 10, **knobs: Any) -> list[Ranking]:
        """Search with queries from :meth:`prepare_queries` of the merged index."""
        return self.search(prepared, k, **knobs)

    def search_in_rounds(self, prepared: Any, k: int, knobs: dict[str, Any],
                         run_round: Callable[[Any, int, dict[str, Any]], list[Ranking]]) -> list[Ranking]:
        """Search ``prepared`` in one round, or in two when :attr:`feedback_knobs` ask for feedback.

        ``run_round(prepared, n, knobs)`` runs one round (here, or over shards) with ``knobs`` less the
        feedback knobs; the expansion between the rounds runs on this index.
        """
        rest = {name: value for name, value in knobs.items() if name not in self.feedback_knobs}
        feedback = {name: value for name, value in knobs.items() if name in self.feedback_knobs}
        docs = self.feedback_docs(feedback)
        if docs:
            prepared = self.apply_feedback(prepared, run_round(prepared, docs, rest), feedback)
        return run_round(prepared, k, rest)

    def feedback_docs(self, knobs: dict[str, Any]) -> int:
        """How many first-round hits a search with these feedback knobs feeds back into its queries
        (0: one round, the default)."""
        return 0

    def apply_feedback(self, prepared: Any, first: Sequence[Ranking], knobs: dict[str, Any]) -> Any:
        """``prepared`` rewritten from the first round's hits (kinds whose :meth:`feedback_docs` can be > 0)."""
        raise NotImplementedError(f"{self.kind} indexes have no feedback round")

    @property
    def shard_dirs(self) -> list[Path]:
        """The shard directories kept by a sharded build (empty for a single-process build)."""
        return [self.directory / name for name in self.manifest.get("shards", [])]

    @property
    def doc_count(self) -> int:
        return int(self.manifest["doc_count"])

    def benchmark_extras(self, queries: Sequence[str], k: int = 10) -> dict[str, Any]:
        """Kind-specific figures ``retriever bench`` reports next to speed (none by default)."""
        return {}

    def close(self) -> None:
        """Release files and native resources held by the index."""

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def index_class(kind: str) -> type[Index]:
    """The :class:`Index` subclass for ``kind``, imported on first use."""
    if kind not in KINDS:
        raise SpecError(f"unknown index kind {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    module, name, extra = KINDS[kind]
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as e:
        raise MissingResourceError(
            f"the {kind!r} index needs a package that is not installed ({e.name}): "
            f"pip install '{extra}'"
        ) from e


def canonical_spec(name: str, kind: str, settings: dict[str, str]) -> str:
    """The canonical string of an index spec, as stored in ``engine.json``."""
    return str(Spec(kind, (), dict(settings), label=name if name != kind else None))


def parse_index_spec(spec: str | Spec) -> tuple[str, str, dict[str, str]]:
    """Split ``[name=]kind(key=value,...)`` into (name, kind, settings), checking the settings.

    The settings are returned as written (strings), the form stored in ``engine.json``.

    Raises:
        SpecError: a malformed spec or an unknown kind.
        SettingError: an unknown setting or a bad value (checked by the kind's schema).
    """
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    if parsed.args:
        raise SpecError(f"index spec {str(parsed)!r}: settings must be key=value")
    index_class(parsed.name).check_settings(dict(parsed.kwargs))
    return parsed.label or parsed.name, parsed.name, dict(parsed.kwargs)


def build_index(kind: str, corpus: Corpus, directory: Path, settings: dict[str, Any] | None = None) -> Index:
    """Build a ``kind`` index over ``corpus`` into ``directory`` (which must not exist)."""
    cls = index_class(kind)
    checked = cls.check_settings(dict(settings or {}))
    started = time.perf_counter()
    with staging_dir(Path(directory)) as tmp:
        persisted = cls.write(tmp, corpus, checked)
        write_manifest(tmp, kind, cls.format_version, settings=persisted, doc_count=len(corpus),
                       corpus_checksum=corpus.checksum,
                       build_seconds=round(time.perf_counter() - started, 3))
    return open_index(directory)


def extend_index(index: Index, docs: Sequence[Document], corpus: Corpus, directory: Path) -> Index:
    """Write ``index`` plus ``docs`` into a new ``directory``; ``corpus`` is the extended corpus."""
    started = time.perf_counter()
    with staging_dir(Path(directory)) as tmp:
        persisted = index.write_extended(tmp, docs)
        write_manifest(tmp, index.kind, index.format_version, reuse=(index.directory, index.manifest),
                       settings=persisted,
                       doc_count=len(corpus), corpus_checksum=corpus.checksum,
                       build_seconds=index.manifest.get("build_seconds"),
                       add_seconds=round(time.perf_counter() - started, 3))
    return open_index(directory)


def build_shard(kind: str, corpus: Corpus, directory: Path, settings: dict[str, Any] | None = None) -> None:
    """Write one shard of a sharded ``kind`` build over ``corpus`` (a view) into ``directory``."""
    cls = index_class(kind)
    started = time.perf_counter()
    with staging_dir(Path(directory)) as tmp:
        persisted = cls.write_shard(tmp, corpus, cls.check_settings(dict(settings or {})))
        write_manifest(tmp, kind, cls.format_version, settings=persisted, doc_count=len(corpus),
                       corpus_checksum=corpus.checksum, build_seconds=round(time.perf_counter() - started, 3))


SHARDS_DIR = "shards"


def merge_index(kind: str, shard_dirs: Sequence[Path], corpus: Corpus, directory: Path,
                settings: dict[str, Any] | None = None, base: Index | None = None) -> Index:
    """Merge shard directories (corpus order) into the index ``directory``; the shards move inside it.

    Args:
        kind: the index kind (its ``combine`` must be ``"merge"``).
        shard_dirs: shards written by :func:`build_shard`; moved to ``directory/shards/``.
        corpus: the whole (new) corpus.
        directory: the merged index (must not exist).
        settings: the spec's settings (checked by the kind's schema here).
        base: for an ``add``: the live index the shards extend; its own shards are kept too.
    """
    cls = index_class(kind)
    checked = cls.check_settings(dict(settings or {}))
    started = time.perf_counter()
    shards = [open_index(Path(d)) for d in shard_dirs]
    try:
        with staging_dir(Path(directory)) as tmp:
            persisted = cls.merge_shards(tmp, shards, checked, base)
            kept = list(base.manifest.get("shards", [])) if base is not None else []
            names = []
            if base is None or kept:  # an index extended without shards keeps none (they would be stale)
                for name in kept:
                    link_tree(base.directory / name, tmp / name)
                names = [f"{SHARDS_DIR}/{i:05d}" for i in range(len(kept), len(kept) + len(shard_dirs))]
                (tmp / SHARDS_DIR).mkdir(exist_ok=True)
                for name, source in zip(names, shard_dirs):
                    os.rename(source, tmp / name)
            seconds = round(time.perf_counter() - started, 3)
            times = ({"build_seconds": base.manifest.get("build_seconds"), "add_seconds": seconds} if base is not None
                     else {"build_seconds": seconds})
            write_manifest(tmp, kind, cls.format_version,
                           reuse=(base.directory, base.manifest) if base is not None else None,
                           settings=persisted, doc_count=len(corpus), corpus_checksum=corpus.checksum,
                           shards=kept + names, **times)
    finally:
        for shard in shards:
            shard.close()
    return open_index(directory)


def open_index(directory: Path) -> Index:
    """Open any index directory, dispatching on the kind in its manifest."""
    manifest = read_manifest(directory)
    kind = manifest["kind"]
    if kind not in KINDS:
        raise IndexFormatError(f"{directory} holds an index of unknown kind {kind!r}")
    cls = index_class(kind)
    check_sizes(directory, manifest)
    if manifest.get("format_version", 0) > cls.format_version:
        raise IndexFormatError(
            f"{directory}: {kind} format version {manifest['format_version']} is newer than this "
            f"retriever reads ({cls.format_version}); upgrade retriever"
        )
    try:
        return cls(Path(directory), manifest)
    except (RetrieverError, ImportError, MemoryError):
        raise
    except Exception as e:  # a damaged file fails in the native reader (Lucene, FAISS, torch, JSON)
        raise IndexFormatError(f"{directory}: cannot open the {kind} index ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:300] if str(e) else ''}); "
                               f"check it with `retriever index verify`") from e
