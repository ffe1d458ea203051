"""Chunking along headings, with overlap, never inside a word."""

from __future__ import annotations

import itertools
import re

from knowledge.chunking import chunk_document, html_to_text
from knowledge.retrieval import highlight


def words(n: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(n))


def test_markdown_headings_build_paths_and_unique_anchors():
    md = (
        "# VPN\n\nIntro text.\n\n## Timeouts\n\nSlow.\n\n### Fix\n\nPush config.\n\n"
        "## Certificates\n\n### Fix\n\nRenew it.\n\n```\n# not a heading\n```\n"
    )
    chunks = chunk_document(md, "markdown")
    assert [c.heading_path for c in chunks] == [
        "VPN",
        "VPN > Timeouts",
        "VPN > Timeouts > Fix",
        "VPN > Certificates > Fix",
    ]
    assert [c.anchor for c in chunks] == ["vpn", "timeouts", "fix", "fix-1"]
    assert "# not a heading" in chunks[-1].text  # fenced code is text, not a heading
    assert [c.seq for c in chunks] == [0, 1, 2, 3]


def test_setext_headings_and_inline_markup():
    chunks = chunk_document("Guide\n=====\n\nIntro.\n\n**MFA** [setup](http://x)\n---\n\nBody.")
    assert [c.heading_path for c in chunks] == ["Guide", "Guide > MFA setup"]


def test_long_sections_are_windowed_with_overlap_and_whole_words():
    body = words(1000)
    chunks = chunk_document(f"# Long\n\n{body}", "markdown")
    assert 5 <= len(chunks) <= 7
    source_words = body.split()
    for chunk in chunks:
        ws = chunk.text.split()
        assert all(w in source_words for w in ws)  # never a cut word
        assert 150 <= len(ws) <= 260
        assert chunk.heading_path == "Long"
    # Consecutive windows share about 40 words.
    for a, b in itertools.pairwise(chunks):
        shared = set(a.text.split()) & set(b.text.split())
        assert 30 <= len(shared) <= 50
    assert chunks[0].text.split()[0] == "w0" and chunks[-1].text.split()[-1] == "w999"


def test_windows_prefer_line_ends():
    steps = "\n".join(f"{i}. " + words(12, f"s{i}x") for i in range(1, 40))
    chunks = chunk_document(f"# Steps\n\n{steps}", "markdown")
    assert len(chunks) > 1
    for chunk in chunks[:-1]:
        assert re.search(r"s\d+x11$", chunk.text)  # ends at the end of a step's line


def test_a_section_a_bit_over_target_stays_whole():
    assert len(chunk_document(f"# A\n\n{words(240)}")) == 1


def test_plain_text_is_one_section():
    chunks = chunk_document("Just some text\nwith lines.", "text")
    assert len(chunks) == 1 and chunks[0].heading_path == "" and chunks[0].anchor == ""


def test_html_keeps_structure_and_drops_scripts():
    html = """<html><head><title>t</title><style>p{}</style></head><body>
    <h1>Printers</h1><p>Printing   fails
    often.</p><script>alert(1)</script>
    <h2>Jams</h2><ol><li>Open tray</li><li>Remove &amp; retry</li></ol>
    <table><tr><td>Model</td><td>HP 400</td></tr></table>
    <pre>lpstat -p
  cancel -a</pre></body></html>"""
    chunks = chunk_document(html, "html")
    assert [c.heading_path for c in chunks] == ["Printers", "Printers > Jams"]
    assert chunks[0].text == "Printing fails often."
    assert "- Open tray\n- Remove & retry" in chunks[1].text
    assert "Model | HP 400" in chunks[1].text
    assert "lpstat -p\n  cancel -a" in chunks[1].text
    assert "alert" not in " ".join(c.text for c in chunks)
    assert html_to_text(html).startswith("# Printers\n\nPrinting fails often.")


def test_empty_documents_have_no_chunks():
    assert chunk_document("# Only a heading\n\n## And another", "markdown") == []
    assert chunk_document("<p>  </p><script>x</script>", "html") == []


def test_highlight_escapes_everything_but_its_markers():
    assert highlight("<img src=x onerror=y>\x02VPN\x03 & more") == (
        "&lt;img src=x onerror=y&gt;<mark>VPN</mark> &amp; more"
    )


def test_passages_are_cut_to_what_the_model_reads():
    """A window longer than the model's word pieces is halved (with overlap) until each part
    fits: every word is still in some passage, and no passage has an unread tail."""
    from knowledge.minilm_openvino import _tokenizer

    tokenizer = _tokenizer(1_000_000)

    def pieces(text):
        return len(tokenizer.encode(text).ids)

    # Paths and commands: several word pieces a word, so 180 words are far over 256 pieces.
    words = [f"C:\\\\ProgramData\\\\Vpn{i}\\\\client.conf" for i in range(180)]
    content = "# VPN client\n\n## Config files\n\n" + " ".join(words)
    plain = chunk_document(content)
    assert len(plain) == 1 and pieces(plain[0].embedding_text) > 256  # one window: tail unread

    fitted = chunk_document(content, count_pieces=pieces, max_pieces=256)
    assert len(fitted) > 1
    assert all(pieces(d.embedding_text) <= 256 for d in fitted)
    assert all(d.heading_path == "VPN client > Config files" for d in fitted)
    joined = " ".join(d.text for d in fitted)
    assert all(f"Vpn{i}\\" in joined for i in range(len(words)))  # every path in a passage
    assert [d.seq for d in fitted] == list(range(len(fitted)))
    # Prose within the limit is cut as before.
    prose = "# Guide\n\n" + " ".join(["The printer is offline again today."] * 20)
    assert chunk_document(prose, count_pieces=pieces, max_pieces=256) == chunk_document(prose)
