"""A self-contained HTML page: plotly figures with plotly.js inlined once, opens offline."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0;
       color: #222; background: #fafafa; }
main { max-width: 1200px; margin: 0 auto; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; }
.sub { color: #666; margin-bottom: 16px; }
.card { background: #fff; border: 1px solid #e3e3e3; border-radius: 8px; padding: 12px 16px;
        margin: 12px 0; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 10px; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
tr.best td { font-weight: 600; background: #eef7ee; }
tr.ref td { color: #777; font-style: italic; }
.note { color: #555; font-size: 14px; }
"""


def require_plotly() -> Any:
    try:
        import plotly
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("HTML reports need plotly: pip install 'lrkit[report]'") from exc
    return plotly


def require_report_extras(skip: str = "report=False") -> None:
    """Fail now, naming the extra, unless plotly and matplotlib (the ``report`` extra) import.

    Called before a sweep claims its first run, so that a missing extra costs nothing;
    ``skip`` names the option that turns the report off (``report=False``, ``--no-report``).
    """
    missing = []
    for module in ("plotly", "matplotlib"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ImportError(
            f"the sweep report needs {' and '.join(missing)}: pip install 'lrkit[report]', "
            f"or pass {skip} to run the sweep without a report"
        )


@dataclass
class Page:
    """Sections of headings, text, tables and figures, written as one offline HTML file."""

    title: str
    subtitle: str = ""
    parts: list[str] = field(default_factory=list)
    _figures: int = 0

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def table(
        self,
        header: list[str],
        rows: list[list[str]],
        row_classes: list[str] | None = None,
    ) -> None:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = []
        for i, row in enumerate(rows):
            cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
            cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
            body.append(f"<tr{cls}>{cells}</tr>")
        self.parts.append(
            f'<div class="card"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>"
        )

    def figure(self, fig: Any) -> None:
        """A plotly figure; the first one carries plotly.js inline for the whole page."""
        import plotly.io as pio

        margin = {"l": 60, "r": 20, "t": 50, "b": 50} | dict(fig.layout.margin.to_plotly_json())
        fig.update_layout(template="plotly_white", margin=margin)
        div = pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=self._figures == 0,
            config={"displaylogo": False, "responsive": True},
        )
        self._figures += 1
        self.parts.append(f'<div class="card">{div}</div>')

    def render(self) -> str:
        sub = f'<div class="sub">{html.escape(self.subtitle)}</div>' if self.subtitle else ""
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>"
            f"<body><main><h1>{html.escape(self.title)}</h1>{sub}{''.join(self.parts)}"
            "</main></body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        require_plotly()
        path = Path(path)
        path.write_text(self.render(), encoding="utf-8")
        return path
