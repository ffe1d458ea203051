"""Meaning, not words: the real all-MiniLM-L6-v2 model finds passages that share no word with
the query (loads the model once per process, about 6 s)."""

from __future__ import annotations

import pytest

from knowledge import retrieval
from knowledge.services import DEMO_KB_DIR, import_folder

pytestmark = pytest.mark.django_db


@pytest.fixture
def minilm(settings):
    settings.KNOWLEDGE_EMBEDDING_BACKEND = "minilm"
    from knowledge.embeddings import backend_problem

    assert backend_problem("minilm") is None  # `make test` installs it: missing is a failure


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # No word of the query occurs in the expected passage's heading path.
        (
            "my laptop can't get online, wireless keeps dropping",
            "Network adapter and Wi-Fi problems",
        ),
        ("I forgot my login secret", "Password reset"),
        ("the thing I use to work from home won't link up", "VPN connection problems"),
        ("my notebook computer dies after an hour unplugged", "Laptop hardware problems"),
    ],
)
def test_finds_by_meaning(personas, minilm, django_capture_on_commit_callbacks, query, expected):
    with django_capture_on_commit_callbacks(execute=True):
        import_folder(tenant=personas.tenant, folder=DEMO_KB_DIR)
    hits = retrieval.search(personas.tenant, query, k=3)
    assert expected in [h.source_title for h in hits], [(h.source_title, h.scores) for h in hits]


def test_meaning_without_shared_words(personas, minilm, ingest):
    ingest(
        personas.tenant, "Spooler", "# Output device\n\nThe printer is offline and paper is jammed."
    )
    ingest(personas.tenant, "Holidays", "# Leave\n\nVacation days are booked in the HR portal.")
    hits = retrieval.search(personas.tenant, "cannot print documents", k=2)
    assert hits[0].source_title == "Spooler"
    assert hits[0].scores.vector > hits[1].scores.vector
