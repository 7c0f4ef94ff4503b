"""MkDocs hook: figures drawn by the build from code; the README and changelog as pages.

A fenced block whose info string is ``schedule`` holds a schedule spec::

    ```schedule steps=1200
    warmup(cosine(max_lr=0.1, total_steps=1000), warmup_steps=100)
    ```

It becomes the Python that builds the schedule (checked to equal ``S.parse(spec)``), its
values at a few steps, and a PNG plotted by ``lrkit.plot_schedule`` while the site builds
(registered as a generated file, so ``--strict`` checks the link like any other). Nothing
is pasted: change a spec, or the schedule code, and the figure follows.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

BLOCK = re.compile(r"^```schedule(?P<opts>[^\n]*)\n(?P<spec>.*?)\n```[ \t]*$", re.M | re.S)
CALL = re.compile(r"\b([a-z_][a-z0-9_]*)\(")
IMG_DIR = "img/gallery"
README_URI = "readme.md"
CHANGELOG_URI = "changelog.md"

_figures: dict[tuple[str, int], str] = {}  # (spec, steps) -> src_uri of its PNG


def _options(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


def _steps(sched: Any, opts: dict[str, str]) -> int:
    if "steps" in opts:
        return int(opts["steps"])
    total = getattr(sched, "total_steps", None)
    return int(total * 1.1) if isinstance(total, int) else 1000


def _render(spec: str, steps: int) -> bytes:
    from matplotlib.figure import Figure

    import lrkit
    from lrkit import schedules as S

    fig = Figure(figsize=(6.4, 2.8), layout="constrained")
    ax = fig.add_subplot()
    lrkit.plot_schedule(S.parse(spec), steps=steps, ax=ax)
    ax.set_title("")  # the page's heading names it; the code above the figure is its spec
    legend = ax.get_legend()
    if legend is not None:
        legend.remove()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def on_files(files: Files, config: Any) -> Files:
    from lrkit import schedules as S

    _figures.clear()
    docs_dir = Path(config["docs_dir"])
    for file in list(files):
        if not file.src_uri.endswith(".md") or file.abs_src_path is None:
            continue
        for match in BLOCK.finditer(Path(file.abs_src_path).read_text(encoding="utf-8")):
            spec = match["spec"].strip()
            steps = _steps(S.parse(spec), _options(match["opts"]))
            key = (spec, steps)
            if key in _figures:
                continue
            name = re.sub(r"[^a-z0-9]+", "-", spec.split("(")[0].lower()).strip("-")
            digest = hashlib.sha1(f"{spec}|{steps}".encode()).hexdigest()[:8]
            uri = f"{IMG_DIR}/{name}-{digest}.png"
            _figures[key] = uri
            files.append(File.generated(config, uri, content=_render(spec, steps)))
    # The repository's front page and its changelog, as pages of the site: the README's links
    # into docs/ become links between pages (checked by --strict like the others).
    root = docs_dir.parent
    for name, uri in (("README.md", README_URI), ("CHANGELOG.md", CHANGELOG_URI)):
        text = (root / name).read_text(encoding="utf-8")
        text = text.replace("](docs/)", "](index.md)").replace("](docs/", "](")
        text = text.replace("](CHANGELOG.md)", f"]({CHANGELOG_URI})")
        files.append(File.generated(config, uri, content=text))
    return files


def _replace(match: re.Match[str], page_uri: str) -> str:
    from lrkit import schedules as S

    spec = match["spec"].strip()
    sched = S.parse(spec)
    steps = _steps(sched, _options(match["opts"]))
    code = CALL.sub(r"S.\1(", spec)
    if eval(code, {"S": S}) != sched:  # the code shown must build the schedule plotted
        raise ValueError(f"gallery: {code!r} does not build the schedule of {spec!r}")
    total = getattr(sched, "total_steps", None)
    end = total if isinstance(total, int) and total < steps else steps
    marks = sorted({0, end // 4, end // 2, (3 * end) // 4, end})
    values = ", ".join(f"`sched({t})` = {sched(t):.4g}" for t in marks)
    image = posixpath.relpath(_figures[(spec, steps)], posixpath.dirname(page_uri) or ".")
    return (
        f"```python\nsched = {code}\n```\n\n{values}\n\n"
        f'![{" ".join(spec.split())}]({image}){{ .lrkit-gallery width="640" }}\n'
    )


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    return BLOCK.sub(lambda m: _replace(m, page.file.src_uri), markdown)
