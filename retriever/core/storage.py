"""Crash-safe writes: staging directories renamed into place, atomic JSON, manifests.

A directory is written under a hidden temporary sibling and renamed to its final
name only once complete, so a crash never leaves a half-written directory that
opens. Small JSON files are replaced with ``os.replace`` after an fsync.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from retriever.core import __version__
from retriever.core.errors import IndexFormatError

MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"


@contextmanager
def staging_dir(final: Path) -> Iterator[Path]:
    """Yield an empty temporary sibling of ``final``; rename it to ``final`` on success.

    On any exception the temporary directory is removed and ``final`` is untouched.

    Raises:
        FileExistsError: ``final`` already exists (nothing is overwritten).
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(f"{final} already exists")
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def read_json(path: Path) -> Any:
    """Read a JSON file, raising :class:`IndexFormatError` naming the file if it is bad."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{path} is not valid JSON: {e}") from None


def write_manifest(directory: Path, kind: str, format_version: int, reuse: tuple[Path, dict] | None = None,
                   **fields: Any) -> dict:
    """Write ``manifest.json`` (kind, format version, build time, library version + fields).

    The manifest also lists every other file of ``directory`` with its size and sha256
    (``files``), so opening can check sizes cheaply and ``retriever index verify`` every byte.
    ``reuse`` is a previous version's directory and manifest: files hard-linked from it (the
    same inode) keep their checksum instead of being hashed again.
    """
    manifest = {
        "kind": kind,
        "format_version": format_version,
        "library_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
        "files": file_table(directory, reuse),
    }
    write_json_atomic(Path(directory) / MANIFEST, manifest)
    return manifest


def read_manifest(directory: Path, kind: str | None = None, max_version: int | None = None) -> dict:
    """Read and check ``manifest.json`` of ``directory``.

    Args:
        directory: an index or corpus directory.
        kind: if given, the kind the manifest must declare.
        max_version: if given, the newest format version this code reads.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise IndexFormatError(f"{directory} is not a directory")
    manifest = read_json(directory / MANIFEST)
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise IndexFormatError(f"{directory / MANIFEST} has no 'kind'")
    if kind is not None and manifest["kind"] != kind:
        raise IndexFormatError(f"{directory} holds a {manifest['kind']!r}, not a {kind!r}")
    if max_version is not None and manifest.get("format_version", 0) > max_version:
        raise IndexFormatError(
            f"{directory} has format version {manifest['format_version']}; this version of "
            f"retriever reads up to {max_version}: upgrade retriever"
        )
    return manifest


def file_table(directory: Path, reuse: tuple[Path, dict] | None = None) -> dict[str, dict[str, Any]]:
    """Relative path -> ``{"size", "sha256"}`` of every file under ``directory`` but the manifest.

    With ``reuse`` (an older directory and its manifest), a file that is a hard link of the
    older one's file of the same name keeps the recorded checksum.
    """
    directory, table = Path(directory), {}
    old_dir, old_manifest = reuse if reuse else (None, {})
    old_files = old_manifest.get("files") if isinstance(old_manifest.get("files"), dict) else {}
    for path in sorted(directory.rglob("*")):
        if not path.is_file() or path.name in (MANIFEST, "write.lock"):
            continue
        name, stat = str(path.relative_to(directory)), path.stat()
        old = old_files.get(name)
        linked = False
        if old_dir is not None and isinstance(old, dict) and old.get("size") == stat.st_size:
            try:
                linked = os.path.samefile(path, Path(old_dir) / name)
            except OSError:
                linked = False
        table[name] = {"size": stat.st_size, "sha256": old["sha256"] if linked else file_sha256(path)}
    return table


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sizes(directory: Path, manifest: dict) -> None:
    """Raise :class:`IndexFormatError` when a file the manifest lists is missing or has another size.

    Cheap (one ``stat`` per file); run on every open. Manifests written before file
    tables existed have no ``files`` and are not checked.
    """
    files = manifest.get("files")
    if not isinstance(files, dict):
        return
    for name, entry in files.items():
        try:
            size = (Path(directory) / name).stat().st_size
        except OSError:
            raise IndexFormatError(f"{Path(directory) / name} is missing; the directory is damaged "
                                   f"(check with `retriever index verify`)") from None
        if size != entry.get("size"):
            raise IndexFormatError(f"{Path(directory) / name} has {size} bytes, the manifest says "
                                   f"{entry.get('size')}: the file is truncated or damaged "
                                   f"(check with `retriever index verify`)")


def verify_files(directory: Path, manifest: dict) -> list[str]:
    """Every problem found by checking each file the manifest lists against its size and sha256."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        return [f"{Path(directory) / MANIFEST}: no file checksums (written by an older retriever)"]
    problems = []
    for name, entry in files.items():
        path = Path(directory) / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != entry.get("size"):
            problems.append(f"{path}: {path.stat().st_size} bytes, expected {entry.get('size')}")
        elif file_sha256(path) != entry.get("sha256"):
            problems.append(f"{path}: checksum mismatch (the bytes changed after it was written)")
    return problems


def link_tree(src: Path, dst: Path, exclude: tuple[str, ...] = ()) -> None:
    """Recreate ``src`` under ``dst`` with hard links (copies where links fail).

    Safe for write-once files (Arrow parts, Lucene segments): a new version of an
    index can start from the old one's files without copying their bytes.
    """
    src, dst = Path(src), Path(dst)
    for root, _, files in os.walk(src):
        target = dst / Path(root).relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            if name in exclude:
                continue
            try:
                os.link(Path(root) / name, target / name)
            except OSError:
                shutil.copy2(Path(root) / name, target / name)


def dir_size(directory: Path) -> int:
    """Total size in bytes of the files under ``directory``."""
    return sum(p.stat().st_size for p in Path(directory).rglob("*") if p.is_file())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
