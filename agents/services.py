"""Writing in the agent runtime on behalf of people and machines: starting a blueprint by hand.

Runs are advanced by the engine; this is where a person (console) or a machine (API) asks for
one, and where what they may ask is decided once.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError

from agentops import quotas
from agents import blueprints, engine
from agents.models import Run

GOAL_MAX = 2000  # characters of a stated goal
STAFF_ROLES = ("agent", "admin")


def start_blueprint(
    *, membership, blueprint: str, goal: str = "", subject_type: str = "", subject_id: str = ""
) -> Run:
    """Start a run of an enabled blueprint for the member's tenant.

    1. Only agents and admins start agents by hand (403 otherwise).
    2. The blueprint must be registered and enabled for the tenant (400).
    3. The goal is plain text within GOAL_MAX characters; the blueprint checks the rest and
       names the run's subject (``Blueprint.start_input``; 404 for a subject the member may
       not see).
    """
    if membership is None or not membership.can("agent.start"):
        raise PermissionDenied("Only agents and admins can start an agent run.")
    try:
        bp = blueprints.get(blueprint)
    except LookupError:
        known = ", ".join(b.name for b in blueprints.all_blueprints())
        raise ValidationError(
            {"blueprint": f"Unknown blueprint {blueprint!r}; known: {known}."}
        ) from None
    goal = (goal or "").strip()
    if len(goal) > GOAL_MAX:
        raise ValidationError(
            {"goal": f"The goal is {len(goal)} characters long; say it in {GOAL_MAX} or fewer."}
        )
    if not blueprints.for_tenant(membership.tenant, bp.name).enabled:
        raise ValidationError({"blueprint": f"{bp.title or bp.name} is not enabled here."})
    quotas.check_run(membership.tenant, blueprint=bp.name)  # before any cost
    start = bp.start_input(
        tenant=membership.tenant,
        actor=membership.user,
        goal=goal,
        subject_type=(subject_type or "").strip(),
        subject_id=(subject_id or "").strip(),
    )
    return engine.start_run(
        tenant=membership.tenant,
        blueprint=bp.name,
        subject_type=start.get("subject_type", ""),
        subject_id=str(start.get("subject_id", ""))[:64],
        subject_repr=start.get("subject_repr", "") or goal[:200],
        actor=membership.user,
        started_by_staff=membership.role in STAFF_ROLES,
        input=start.get("input", {}),
    )
