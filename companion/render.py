"""Server-rendered HTML (Jinja2, autoescaped): the reconciliation report and the operator
console's pages. Self-contained: inline CSS and SVG charts, no JavaScript, no external asset."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals["bars"] = bars
    return env


def render(name: str, **context: Any) -> str:
    return str(environment().get_template(name).render(**context))


def bars(items: list[tuple[str, int]], width: int = 560, row: int = 22, label_width: int = 210) -> dict[str, Any]:
    """A horizontal bar chart's geometry for the templates' SVG: each bar's label, value,
    y and width, scaled to the largest value."""
    top = max((v for _, v in items), default=0) or 1
    span = width - label_width - 70
    return {"width": width, "height": row * len(items) + 8, "label_width": label_width,
            "rows": [{"label": k, "value": v, "y": 4 + i * row, "w": round(span * v / top, 1)}
                     for i, (k, v) in enumerate(items)]}


def reconcile_html(summary: dict[str, Any]) -> str:
    regions = sorted(((r, sum(c.values())) for r, c in summary["regions"].items()), key=lambda kv: kv[0])
    return render("reconcile.html", s=summary, regions=regions)
