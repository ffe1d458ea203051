"""An investigation's report as a person reads it: Markdown, and its metric series as SVG paths.

The charts are drawn on the server (an SVG polyline per series, scaled to the view box), so
the report page needs no script and prints as it looks.
"""

from __future__ import annotations

from typing import Any

WIDTH, HEIGHT, PAD = 600, 160, 8


def chart_paths(charts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each series with the ``points`` attribute of an SVG polyline and its value range."""
    drawn = []
    for chart in charts:
        values = [float(p["value"]) for p in chart.get("points", []) if _number(p.get("value"))]
        if len(values) < 2:
            continue
        low, high = min(values), max(values)
        span = (high - low) or 1.0
        step = (WIDTH - 2 * PAD) / (len(values) - 1)
        points = " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - (v - low) / span * (HEIGHT - 2 * PAD):.1f}"
            for i, v in enumerate(values)
        )
        points_list = chart.get("points", [])
        drawn.append(
            {
                **chart,
                "polyline": points,
                "low": low,
                "high": high,
                "first_at": points_list[0].get("at", ""),
                "last_at": points_list[-1].get("at", ""),
                "width": WIDTH,
                "height": HEIGHT,
            }
        )
    return drawn


def _number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def markdown(run, report: dict[str, Any]) -> str:
    """The report as a Markdown document, evidence included (the download)."""
    observations = {o["id"]: o for o in run.state_data.get("observations", [])}
    lines = [
        f"# {report.get('title', 'Investigation')}",
        "",
        f"- Run: {run.run_id} ({run.get_status_display()})",
        f"- Goal: {report.get('goal', '')}",
        f"- Window: last {report.get('window_minutes', '?')} minutes",
    ]
    if report.get("ticket"):
        lines.append(f"- Ticket: {report['ticket']}")
    lines += ["", "## Summary", "", report.get("summary", ""), "", "## Findings", ""]
    for finding in report.get("findings", []):
        lines += [
            f"### {finding.get('title', '')} ({finding.get('severity', '')})",
            "",
            finding.get("detail", ""),
            "",
            "Evidence: " + ", ".join(finding.get("evidence", [])),
            "",
        ]
    if report.get("recommendations"):
        lines += ["## Recommendations", ""]
        lines += [f"- {item}" for item in report["recommendations"]]
        lines.append("")
    lines += ["## Evidence", ""]
    for obs_id, obs in observations.items():
        args = ", ".join(f"{k}={v}" for k, v in (obs.get("args") or {}).items())
        lines.append(f"- **{obs_id}** `{obs.get('tool')}({args})` {obs.get('status')}: ")
        lines[-1] += (obs.get("summary") or "").replace("\n", " ")
    return "\n".join(lines) + "\n"
