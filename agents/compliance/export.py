"""The signed compliance report as CSV and as PDF.

PDF with fpdf2: a maintained, pure-Python PDF writer that installs from PyPI with no system
packages (WeasyPrint needs Pango and Cairo from the OS; ReportLab is heavier for a table
report). Its built-in fonts are Latin-1: other characters are replaced, never dropped silently
into an unreadable glyph. Every cell of the CSV that a spreadsheet would run as a formula is
defused with a leading apostrophe.
"""

from __future__ import annotations

import csv
import io

from agents.compliance.report import COLUMNS, SECTIONS

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in FORMULA_START else text


def signature_lines(report: dict) -> list[tuple[str, str]]:
    s = report["signature"]
    return [
        ("tenant", report["tenant"]),
        ("period", f"{report['period']['start']} to {report['period']['end']}"),
        ("generated_at", s["generated_at"]),
        ("audit_chain_seq", str(s["chain_seq"])),
        ("audit_chain_hash", s["chain_hash"]),
        ("report_sha256", s["digest"]),
        ("hmac_sha256", s["hmac"]),
    ]


def to_csv(report: dict) -> str:
    """One CSV: the signature block, then each section with its own header row."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["# AgentOps compliance report"])
    for key, value in signature_lines(report):
        writer.writerow([f"# {key}", _cell(value)])
    for name, title in SECTIONS.items():
        writer.writerow([])
        writer.writerow(["section", title, f"{report['counts'][name]} rows"])
        writer.writerow(COLUMNS[name])
        for row in report["sections"][name]:
            writer.writerow([_cell(row.get(col, "")) for col in COLUMNS[name]])
    return out.getvalue()


def _latin1(text) -> str:
    return str(text or "").encode("latin-1", "replace").decode("latin-1")


def to_pdf(report: dict) -> bytes:
    from fpdf import FPDF

    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_auto_page_break(auto=True, margin=12)
    pdf.set_title(_latin1(f"Compliance report {report['tenant']}"))
    s = report["signature"]  # also in the document's metadata, readable without the pages
    pdf.set_subject(f"audit chain head #{s['chain_seq']} {s['chain_hash']}; sha256 {s['digest']}")
    pdf.set_keywords(f"hmac-sha256 {s['hmac']}")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 14)
    pdf.cell(
        0, 8, _latin1(f"Compliance report - {report['tenant']}"), new_x="LMARGIN", new_y="NEXT"
    )
    pdf.set_font("Courier", size=7)
    for key, value in signature_lines(report):
        pdf.cell(0, 4, _latin1(f"{key}: {value}"), new_x="LMARGIN", new_y="NEXT")
    for name, title in SECTIONS.items():
        rows = report["sections"][name]
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 11)
        pdf.cell(0, 6, _latin1(f"{title} ({len(rows)})"), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=7)
        if not rows:
            pdf.cell(0, 5, "None in this period.", new_x="LMARGIN", new_y="NEXT")
            continue
        with pdf.table(text_align="LEFT", line_height=3.5) as table:
            header = table.row()
            for col in COLUMNS[name]:
                header.cell(_latin1(col.replace("_", " ")))
            for row in rows:
                cells = table.row()
                for col in COLUMNS[name]:
                    cells.cell(_latin1(row.get(col, ""))[:400])
    return bytes(pdf.output())
