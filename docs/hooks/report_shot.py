"""MkDocs hook: a real sweep report, run and photographed while the site builds.

The build runs a small sweep on the bundled ``digits-mlp`` task (6 LRs × 2 schedules × 2
seeds, 2 epochs: about ten seconds on one core), writes its report with lrkit's own report
code, and opens it in headless Chromium to take the screenshot that docs/sweeps.md shows.
Both the screenshot (``img/report/report.png``) and the live report
(``img/report/report.html``) are generated files of the site: nothing is pasted, so a change
to the sweep or the report code shows on the page at the next build.

Chromium is required (Debian's ``chromium``, which ``make docs`` and ``make test`` install);
without it the build stops with a message that says so rather than publishing a stale image.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

IMG_DIR = "img/report"
SHOT_URI = f"{IMG_DIR}/report.png"
REPORT_URI = f"{IMG_DIR}/report.html"
WINDOW = (1280, 1800)  # the verdict, parallel coordinates, LR sensitivity and the best table
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--virtual-time-budget=15000",  # let plotly draw every figure before the picture is taken
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        "docs/hooks/report_shot.py: the sweeps page shows a screenshot of a real report, taken "
        "with headless Chromium while the site builds, and no chromium is on PATH; install it "
        "(`make browser`, i.e. Debian's chromium and chromium-driver) and build again"
    )


def run_sweep(directory: Path) -> Path:
    """The sweep the page shows; returns its report."""
    import lrkit

    res = lrkit.sweep("digits-mlp", lrs=lrkit.logspace(3e-3, 1.0, 6),
                      schedules=("constant", "one_cycle"), seeds=(0, 1), epochs=2,
                      store=directory / "store", name="digits", progress=False)  # fmt: skip
    assert res.report is not None
    return Path(res.report)


def screenshot(page: Path, out: Path) -> bytes:
    """A PNG of ``page`` as headless Chromium draws it."""
    width, height = WINDOW
    proc = subprocess.run(
        [
            _chromium(),
            *FLAGS,
            f"--window-size={width},{height}",
            f"--user-data-dir={out.parent / 'chromium-profile'}",
            f"--screenshot={out}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0 or not out.exists() or out.stat().st_size < 20_000:
        raise RuntimeError(
            f"docs/hooks/report_shot.py: Chromium could not photograph {page} "
            f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return out.read_bytes()


def on_files(files: Files, config: Any) -> Files:
    with tempfile.TemporaryDirectory(prefix="lrkit-docs-report-") as tmp:
        report = run_sweep(Path(tmp))
        png = screenshot(report, Path(tmp) / "report.png")
        html = report.read_bytes()
    files.append(File.generated(config, SHOT_URI, content=png))
    files.append(File.generated(config, REPORT_URI, content=html))
    return files
