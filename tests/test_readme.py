"""The README's API snippet runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_api_snippet_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    snippet = re.search(r"<!-- snippet:api.*?-->\s*```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, str(README), "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("d1 ")
    assert "d2" in printed[-2] and "d3" in printed[-1]
    assert (tmp_path / "work" / "quickstart" / "engine.json").exists()


def test_results_block_matches_table():
    from eval.reproduce import BEGIN, END, load_table, markdown

    text = README.read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block.strip() == markdown(load_table()).strip()
