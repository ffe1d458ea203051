"""An investigation's report as a person reads it: Markdown, PDF, and its metric series as SVG paths.

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


def pdf(run, report: dict[str, Any]) -> bytes:
    """The report as a PDF: the same sections as the page, the metric series drawn as charts."""
    from agentops.pdf import Document

    observations = {o["id"]: o for o in run.state_data.get("observations", [])}
    meta = f"Run {run.run_id} ({run.get_status_display()}) · last {report.get('window_minutes', '?')} minutes"
    if report.get("ticket"):
        meta += f" · ticket {report['ticket']}"
    doc = Document(report.get("title", "Investigation"), subtitle=meta)
    doc.paragraph(f"Goal: {report.get('goal', '')}", muted=True)
    doc.heading("Summary")
    doc.paragraph(report.get("summary", ""))
    doc.heading("Findings")
    for finding in report.get("findings", []):
        doc.heading(f"{finding.get('title', '')} ({finding.get('severity', '')})", size=11)
        doc.paragraph(finding.get("detail", ""))
        cited = [e for e in finding.get("evidence", []) if e in observations]
        if cited:
            doc.paragraph("Evidence: " + ", ".join(cited), muted=True, size=9)
    charts = chart_paths(report.get("charts", []))
    if charts:
        doc.heading("Metrics")
        for chart in charts:
            values = [float(p["value"]) for p in chart["points"] if _number(p.get("value"))]
            label = " · ".join(str(chart.get(k)) for k in ("service", "metric") if chart.get(k))
            doc.line_chart(
                label or "series", values, first=chart["first_at"], last=chart["last_at"]
            )
    if report.get("recommendations"):
        doc.heading("Recommendations")
        doc.bullets([str(item) for item in report["recommendations"]])
    doc.heading("Evidence")
    for obs_id, obs in observations.items():
        args = ", ".join(f"{k}={v}" for k, v in (obs.get("args") or {}).items())
        doc.paragraph(f"{obs_id}  {obs.get('tool')}({args}) {obs.get('status')}", size=9)
        doc.paragraph((obs.get("summary") or "")[:1500], muted=True, size=9)
    return doc.bytes()
