"""Nearest-neighbour triage over labelled past tickets (knowledge.history), on the real
database with the deterministic hashing embedder."""

from __future__ import annotations

import pytest

from knowledge import history
from knowledge.models import LabelledExample

VPN = [
    "VPN disconnects every few minutes when working from home",
    "VPN keeps disconnecting when working from home on wifi",
    "Cannot stay connected to the VPN from home, it disconnects",
    "VPN connection drops every few minutes from my home office",
]
PRINTER = [
    "Printer on the third floor shows a paper jam",
    "The office printer is jammed and will not print",
    "Paper jam in the printer next to the kitchen",
]


def examples(texts, category, priority="medium", group="Network", prefix="X"):
    return [
        {
            "ref": f"{prefix}{i}",
            "text": t,
            "category": category,
            "priority": priority,
            "assignment_group": group,
        }
        for i, t in enumerate(texts)
    ]


def test_index_upserts_by_ref_in_batches(personas):
    tenant = personas.tenant
    rows = examples(VPN, "network") + examples(PRINTER, "hardware", prefix="P")
    assert history.index_examples(tenant, rows, batch_size=3) == 7
    # Re-importing a ref updates it (the later row wins, also inside one batch).
    again = [
        {"ref": "X0", "text": VPN[0], "category": "vpn"},
        {"ref": "X0", "text": VPN[0], "category": "remote-access"},
    ]
    history.index_examples(tenant, again)
    qs = LabelledExample.objects.for_tenant(tenant)
    assert qs.count() == 7
    row = qs.get(ref="X0")
    assert row.category == "remote-access" and row.embedding_model == "hashing-v1"
    assert len(row.embedding) == 384
    # Rows without text are skipped; a row without a ref gets a stable hash of its text.
    history.index_examples(tenant, [{"text": "  "}, {"text": "Outlook will not open"}])
    assert qs.count() == 8 and qs.filter(ref__startswith="sha1:").count() == 1


def test_similar_orders_by_cosine_and_excludes_a_ref(personas):
    tenant = personas.tenant
    history.index_examples(
        tenant, examples(VPN, "network") + examples(PRINTER, "hardware", prefix="P")
    )
    found = history.similar(tenant, "VPN disconnects every few minutes from home", k=3)
    assert [n.category for n in found] == ["network"] * 3
    assert found[0].similarity >= found[1].similarity >= found[2].similarity
    assert found[0].ref == "X0"
    assert "X0" not in [n.ref for n in history.similar(tenant, VPN[0], k=5, exclude_ref="X0")]


def test_vote_picks_the_tenants_own_labels_with_confidence(personas):
    tenant = personas.tenant
    history.index_examples(
        tenant,
        examples(VPN, "remote-access", priority="P3", group="Network Ops")
        + examples(PRINTER, "printing", priority="P4", group="Desk", prefix="P"),
    )
    vote = history.vote(tenant, "My VPN disconnects every few minutes when I work from home")
    assert vote is not None and vote.confident
    # The tenant's own taxonomy, not the model's categories.
    assert vote.label("category") == "remote-access"
    assert vote.label("priority") == "P3"
    assert vote.label("assignment_group") == "Network Ops"
    assert vote.category.confidence >= history.MIN_AGREEMENT
    assert vote.qualified >= history.MIN_NEIGHBOURS
    assert {n.ref for n in vote.neighbours} <= {"X0", "X1", "X2", "X3"}
    detail = vote.as_dict()
    assert detail["labels"]["category"]["value"] == "remote-access"
    assert detail["neighbours"][0]["ref"].startswith("X")
    assert "remote-access" in vote.explain() and "X" in vote.explain()


def test_thin_history_falls_back(personas):
    tenant = personas.tenant
    assert history.vote(tenant, VPN[0]) is None  # no history at all
    history.index_examples(tenant, examples(VPN[:2], "network"))
    assert history.vote(tenant, VPN[0]) is None  # two similar examples are not enough
    history.index_examples(tenant, examples(PRINTER, "hardware", prefix="P"))
    # Plenty of history, none of it similar: still the model's call.
    assert history.vote(tenant, "Outlook crashes when I open a shared calendar") is None


def test_disagreement_falls_back(personas):
    tenant = personas.tenant
    rows = examples(VPN, "network")
    rows[1]["category"] = rows[3]["category"] = "access"  # a 2/2 split
    history.index_examples(tenant, rows)
    assert history.vote(tenant, VPN[0] + " again") is None
    result = history.tally_for(tenant, VPN[0] + " again")
    assert result.qualified == 4 and not result.confident


def test_another_tenants_near_duplicates_never_vote(personas):
    acme, globex = personas.tenant, personas.other_tenant
    # Globex has the exact texts, labelled its own way; Acme has two loosely similar tickets.
    history.index_examples(globex, examples(VPN, "globex-secret-label", group="Globex NOC"))
    history.index_examples(acme, examples(VPN[:2], "network"))
    assert history.vote(acme, VPN[2]) is None  # Globex's four would have carried it
    found = history.similar(acme, VPN[2], k=10)
    assert {n.ref for n in found} == {"X0", "X1"}
    assert all(n.category == "network" for n in found)
    result = history.tally_for(acme, VPN[2])
    assert "globex" not in str(result.as_dict()).lower()
    # And Globex's own vote sees only Globex.
    vote = history.vote(globex, VPN[2])
    assert vote is not None and vote.label("category") == "globex-secret-label"


def test_examples_of_another_embedding_model_are_ignored(personas):
    tenant = personas.tenant
    history.index_examples(tenant, examples(VPN, "network"))
    LabelledExample.objects.for_tenant(tenant).update(embedding_model="old-model")
    assert history.similar(tenant, VPN[0], k=5) == []


def test_set_resolved_ok(personas):
    tenant = personas.tenant
    history.index_examples(tenant, examples(VPN[:1], "network"))
    assert history.set_resolved_ok(tenant, "X0", False) == 1
    assert LabelledExample.objects.for_tenant(tenant).get(ref="X0").resolved_ok is False


@pytest.mark.parametrize("k", [0, -1])
def test_no_neighbours_for_k_below_one(personas, k):
    assert history.similar(personas.tenant, "anything", k=k) == []


def test_a_retrain_that_cannot_be_queued_loses_no_example(
    personas, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    """Redis (the debounce) or the broker down after the examples commit: they stay written
    and the caller goes on; the failure is logged, and the next change queues the retrain."""
    import logging

    from knowledge import triage_model

    def down(tenant_id):
        raise OSError("Connection refused")

    monkeypatch.setattr(triage_model, "schedule_retrain", down)
    with caplog.at_level(logging.ERROR), django_capture_on_commit_callbacks(execute=True) as hooks:
        written = history.index_examples(
            personas.tenant,
            [{"ref": "INC-1", "text": "VPN drops every hour", "category": "network"}],
        )
    assert written == 1 and len(hooks) == 1  # the retrain's hook ran, and failed
    assert "Connection refused" in caplog.text
    assert LabelledExample.objects.for_tenant(personas.tenant).filter(ref="INC-1").exists()
