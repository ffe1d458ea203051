"""Chart geometry for server-drawn SVG (attributes only: the CSP forbids inline styles).

``columns`` places one column per point on a WIDTH by HEIGHT canvas (stacked when a point has
two values); ``rows`` gives horizontal bars as fractions of the largest value.
"""

from __future__ import annotations

WIDTH, HEIGHT = 720, 140


def columns(points: list[dict], key: str, *, stack: str = "", label=None) -> dict:
    """``points`` → ``{"bars": [{x, w, y, h, y2, h2, value, value2, label}], "max": m}``."""
    values = [(p.get(key) or 0) for p in points]
    top = max(values) if values else 0
    n = max(len(points), 1)
    slot = WIDTH / n
    bars = []
    for p, value in zip(points, values, strict=True):
        i = len(bars)
        part = (p.get(stack) or 0) if stack else 0
        h = HEIGHT * value / top if top else 0
        h2 = HEIGHT * part / top if top else 0
        bars.append(
            {
                "x": round(i * slot + slot * 0.1, 2),
                "w": round(max(slot * 0.8, 1), 2),
                "y": round(HEIGHT - h, 2),
                "h": round(h, 2),
                "y2": round(HEIGHT - h2, 2),
                "h2": round(h2, 2),
                "value": value,
                "value2": part,
                "label": label(p) if label else "",
            }
        )
    return {"bars": bars, "max": top, "width": WIDTH, "height": HEIGHT}


def rows(items: list[dict], key: str, *, label: str) -> list[dict]:
    """Horizontal bars: each item with its ``label`` and its width on a 0..1000 axis."""
    top = max((i[key] for i in items), default=0)
    return [
        {**i, "label": i[label], "pct": round(1000 * i[key] / top, 1) if top else 0} for i in items
    ]
