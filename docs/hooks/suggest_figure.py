"""MkDocs hook: the suggestion-quality figure, drawn while the site builds.

``img/suggest.png`` is plotted by ``benchmarks.suggest.plot.render`` from the committed
summary ``docs/data/suggest_summary.json`` (written by ``make bench-suggest``; the oracle
behind it is not committed). Rerun the benchmark and the figure follows.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = ROOT / "docs" / "data" / "suggest_summary.json"
URI = "img/suggest.png"


def on_files(files: Files, config: Any) -> Files:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # benchmarks/ is a folder of the repository, not installed
    from benchmarks.suggest.plot import render

    content = render(json.loads(SUMMARY.read_text()))
    existing = files.get_file_from_path(URI)
    if existing is not None:
        files.remove(existing)
    files.append(File.generated(config, URI, content=content))
    return files
