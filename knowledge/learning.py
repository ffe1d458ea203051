"""The learning loop: golden paths and playbook suggestions. Plain values in.

- ``promote_golden_path`` turns a resolution people vouched for (a reviewer approved it, or
  the requester rated it 4 or 5) into a ``golden_path`` source, which retrieval prefers for
  similar tickets. Its provenance (ticket, run, approver, CSAT) is kept on the source and
  written into the text, so whoever reads it, person or agent, sees why it is trusted.
- ``suggest_playbook`` finds a resolution path (tool names in order) that three or more
  similar past tickets were resolved by successfully.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from knowledge.history import DEFAULT_K, Neighbour, min_similarity, similar
from knowledge.models import Source, SourceKind

PATH_SEPARATOR = " > "  # how LabelledExample.resolution_path joins tool names
MIN_PLAYBOOK_SUPPORT = 3
PROVENANCE_LABELS = {
    "ticket": "Ticket",
    "run": "Agent run",
    "approver": "Approved by",
    "approved_at": "Approved at",
    "csat": "Requester rating (CSAT)",
    "csat_comment": "Requester comment",
    "tools": "Tools",
    "reason": "Promoted because",
}


def join_path(tools: list[str]) -> str:
    return PATH_SEPARATOR.join(t for t in tools if t)


def split_path(path: str) -> list[str]:
    return [t.strip() for t in (path or "").split(PATH_SEPARATOR.strip()) if t.strip()]


def golden_key(ref: str) -> str:
    return f"golden:{ref}"


def provenance_rows(provenance: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs in a fixed order, for the text and for ``_provenance.html``."""
    rows = []
    for key, label in PROVENANCE_LABELS.items():
        value = provenance.get(key)
        if value in (None, "", []):
            continue
        if isinstance(value, list | tuple):
            value = PATH_SEPARATOR.join(str(v) for v in value)
        rows.append((label, str(value)))
    for key, value in provenance.items():
        if key not in PROVENANCE_LABELS and value not in (None, "", []):
            rows.append((key.replace("_", " ").capitalize(), str(value)))
    return rows


def golden_path_markdown(
    *, title: str, problem: str, resolution: str, provenance: Mapping[str, Any]
) -> str:
    tools = provenance.get("tools") or []
    parts = [f"# {title}", "", "## Problem", "", problem.strip() or "(no description)", ""]
    parts += ["## Resolution", "", resolution.strip() or "(no resolution notes)", ""]
    if tools:
        parts += ["## Steps", ""]
        parts += [f"{i}. `{tool}`" for i, tool in enumerate(tools, 1)]
        parts.append("")
    parts += ["## Provenance", ""]
    parts += [f"- {label}: {value}" for label, value in provenance_rows(provenance)]
    return "\n".join(parts).strip() + "\n"


def promote_golden_path(
    *,
    tenant,
    ref: str,
    title: str,
    problem: str,
    resolution: str,
    provenance: Mapping[str, Any],
    actor=None,
):
    """Create or update the golden path of ``ref`` (one per ticket: a later approval or rating
    updates it, unchanged text is skipped by checksum). Returns the current Document."""
    from knowledge.services import ingest_text

    provenance = dict(provenance)
    content = golden_path_markdown(
        title=title, problem=problem, resolution=resolution, provenance=provenance
    )
    return ingest_text(
        tenant=tenant,
        kind=SourceKind.GOLDEN_PATH,
        title=f"Golden path: {title}"[:300],
        content=content,
        content_type="markdown",
        origin=f"ticket:{ref}",
        external_key=golden_key(ref),
        provenance=provenance,
        actor=actor,
    )


def retire_golden_path(*, tenant, ref: str, reason: str, actor=None):
    """Take the golden path of ``ref`` out of retrieval, when what vouched for it no longer
    does (the requester lowered the rating). Its versions stay for the record, with the reason
    in its provenance; a later approval or a 4-5 rating brings it back. Returns the Source, or
    None if there was none."""
    from knowledge.services import source_deactivate

    source = (
        Source.objects.for_tenant(tenant)
        .filter(kind=SourceKind.GOLDEN_PATH, external_key=golden_key(ref))
        .first()
    )
    if source is None or not source.is_active:
        return source
    source.provenance = {**source.provenance, "retired": reason}
    source.save(update_fields=["provenance"])
    return source_deactivate(source=source, actor=actor)


@dataclass(frozen=True)
class Playbook:
    """A tool sequence that similar past tickets were resolved by, with them as evidence."""

    steps: list[str]
    evidence: list[Neighbour]

    @property
    def support(self) -> int:
        return len(self.evidence)

    @property
    def path(self) -> str:
        return join_path(self.steps)


def suggest_playbook(
    tenant,
    text: str,
    *,
    exclude_ref: str | None = None,
    k: int = DEFAULT_K,
    min_support: int = MIN_PLAYBOOK_SUPPORT,
    neighbours: list[Neighbour] | None = None,
    embedder=None,
) -> Playbook | None:
    """The resolution path shared by at least ``min_support`` similar, successfully resolved
    past tickets (the most supported one; ties go to the more similar evidence), or None.

    ``neighbours`` reuses a ``similar`` result the caller already has (the ticket page asks
    once for both the similar tickets and the playbook).
    """
    if neighbours is None:
        neighbours = similar(tenant, text, k, exclude_ref, embedder=embedder)
    threshold = min_similarity(embedder)
    groups: dict[str, list[Neighbour]] = {}
    for n in neighbours:
        if n.similarity >= threshold and n.resolved_ok and n.resolution_path:
            groups.setdefault(n.resolution_path, []).append(n)
    if not groups:
        return None
    path, evidence = max(
        groups.items(), key=lambda item: (len(item[1]), sum(n.similarity for n in item[1]))
    )
    if len(evidence) < min_support:
        return None
    return Playbook(steps=split_path(path), evidence=evidence)
