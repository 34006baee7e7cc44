"""The one report writer: every evaluation writes ``<stem>.json`` and ``<stem>.md`` through it.

The JSON payload gets the checkout's commit and the UTC date added, so any number
in a report can be traced to the code that produced it.

Example:
    >>> write_report(Path("results/nfcorpus-test"), {"results": rows}, markdown_text)
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any


def write_report(stem: str | Path, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``payload`` (plus ``commit`` and ``date``) to ``stem.json`` and ``markdown`` to ``stem.md``.

    Returns:
        The two paths written.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "commit": git_commit(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    json_path, md_path = Path(f"{stem}.json"), Path(f"{stem}.md")
    json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    return json_path, md_path


def git_commit() -> str | None:
    """The checkout's commit, or None outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
