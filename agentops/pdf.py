"""PDF documents in the house style (fpdf2): headings, paragraphs, bullet lists, line charts.

Text that came from people or models is untrusted but harmless here (a PDF has no markup to
inject into); it still goes through one font that can draw it. A Unicode TrueType font is
used when the machine has one (``PDF_FONT_PATH``, else DejaVu Sans or Liberation Sans from the
usual Debian locations); without one the built-in Helvetica draws Latin-1 and every other
character becomes "?", so a document is always produced.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from django.conf import settings
from fpdf import FPDF

# fontTools (fpdf2 subsets the font with it) logs every table it prunes at INFO.
logging.getLogger("fontTools").setLevel(logging.WARNING)

_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)
INK = (31, 41, 55)
MUTED = (107, 114, 128)
ACCENT = (37, 99, 235)


def _font_path() -> Path | None:
    configured = getattr(settings, "PDF_FONT_PATH", "")
    for candidate in (configured, *_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


class Document(FPDF):
    """An A4 document with a title line on every page and page numbers in the footer."""

    def __init__(self, title: str, *, subtitle: str = ""):
        super().__init__(format="A4")
        self.doc_title = title
        self.subtitle = subtitle
        font = _font_path()
        if font is not None:
            self.add_font("body", "", str(font))
            self.family = "body"
        else:
            self.family = "helvetica"
        self.unicode = font is not None
        self.set_title(self.clean(title))
        self.set_creator("AgentOps")
        self.set_auto_page_break(auto=True, margin=18)
        self.add_page()
        self.set_font(self.family, size=18)
        self.set_text_color(*INK)
        self.multi_cell(0, 9, self.clean(title), new_x="LMARGIN", new_y="NEXT")
        if subtitle:
            self.set_font(self.family, size=10)
            self.set_text_color(*MUTED)
            self.multi_cell(0, 5, self.clean(subtitle), new_x="LMARGIN", new_y="NEXT")
        self.ln(3)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family, size=8)
        self.set_text_color(*MUTED)
        self.cell(0, 6, self.clean(f"{self.doc_title} · page {self.page_no()}"), align="C")

    def clean(self, text: Any) -> str:
        text = str(text if text is not None else "").replace("\x00", "")
        if self.unicode:
            return text
        return text.encode("latin-1", "replace").decode("latin-1")

    def heading(self, text: str, *, size: int = 13) -> None:
        self.ln(2)
        self.set_font(self.family, size=size)
        self.set_text_color(*INK)
        self.multi_cell(0, 7, self.clean(text), new_x="LMARGIN", new_y="NEXT")

    def paragraph(self, text: str, *, muted: bool = False, size: int = 10) -> None:
        self.set_font(self.family, size=size)
        self.set_text_color(*(MUTED if muted else INK))
        self.multi_cell(0, 5, self.clean(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(1)

    def bullets(self, items: list[str]) -> None:
        self.set_font(self.family, size=10)
        self.set_text_color(*INK)
        for item in items:
            self.multi_cell(
                0,
                5,
                self.clean(f"•  {item}" if self.unicode else f"-  {item}"),
                new_x="LMARGIN",
                new_y="NEXT",
            )
        self.ln(1)

    def line_chart(
        self, label: str, values: list[float], *, first: str = "", last: str = ""
    ) -> None:
        """One series as a polyline in a framed box, with its range and time span."""
        if len(values) < 2:
            return
        width, height = self.epw, 38
        if self.will_page_break(height + 14):
            self.add_page()
        self.set_font(self.family, size=9)
        self.set_text_color(*INK)
        low, high = min(values), max(values)
        self.cell(
            0, 5, self.clean(f"{label}  (min {low:g}, max {high:g})"), new_x="LMARGIN", new_y="NEXT"
        )
        x0, y0 = self.l_margin, self.get_y()
        self.set_draw_color(209, 213, 219)
        self.rect(x0, y0, width, height)
        span = (high - low) or 1.0
        step = (width - 4) / (len(values) - 1)
        points = [
            (x0 + 2 + i * step, y0 + height - 2 - (v - low) / span * (height - 4))
            for i, v in enumerate(values)
        ]
        self.set_draw_color(*ACCENT)
        self.set_line_width(0.5)
        self.polyline(points)
        self.set_line_width(0.2)
        self.set_y(y0 + height + 1)
        if first or last:
            self.set_font(self.family, size=7)
            self.set_text_color(*MUTED)
            self.cell(width / 2, 4, self.clean(first))
            self.cell(width / 2, 4, self.clean(last), align="R", new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def bytes(self) -> bytes:
        return bytes(self.output())
