"""The state-graph contract: a pipeline is an explicit graph, so a new agent type is a small
module.

A blueprint declares its states and the transitions between them; the engine checkpoints
after every state (a worker's task goes straight on to the next one for a few seconds,
``RUN_CHAIN_SECONDS``) and refuses a transition the graph does not have.
Each state is a method ``state_<name>(ctx) -> Outcome``. The console draws the graph.

A blueprint also declares the tools it may call (``tools``): the engine refuses any other,
and a tenant may narrow the list further (``agents.blueprints.registry``). Tools named in
``approval_tools`` always wait for a person in this blueprint, whatever the policy allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.engine import StepContext
    from agents.models import Run, ToolCall

# Terminal pseudo-states: where a run ends.
DONE = "done"
ESCALATED = "escalated"
FAILED = "failed"
TERMINAL = {DONE: "succeeded", ESCALATED: "escalated", FAILED: "failed"}
# Parking: the run waits for a person; the decision names the state to resume in.
WAIT = "wait"


@dataclass
class Outcome:
    """What one state produced, and where the run goes next."""

    next_state: str
    summary: str = ""
    input_summary: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    step_status: str = "success"  # success / failure / waiting


class Blueprint:
    name: str = ""
    version: str = "1"
    title: str = ""
    description: str = ""
    initial: str = ""
    # state → label, and state → the states it may go to (terminal states and WAIT included)
    states: dict[str, str] = {}
    transitions: dict[str, tuple[str, ...]] = {}
    # The tools this blueprint may call (the engine refuses others); empty: none.
    tools: tuple[str, ...] = ()
    # Tools that need a person's approval in this blueprint even where the policy allows them.
    approval_tools: tuple[str, ...] = ()
    # Settings a tenant may override (agents.blueprints.registry), with their defaults.
    default_config: dict[str, Any] = {}
    # Whether a tenant has it before an admin says otherwise.
    enabled_by_default: bool = True
    kind = "graph"

    def report_url(self, run) -> str | None:
        """Where the run's report is shown, when the blueprint writes one."""
        return None

    def start_input(self, *, tenant, actor, goal: str, subject_type: str, subject_id: str) -> dict:
        """Check a request to start this blueprint (API, console) and return the run's
        ``subject_type``, ``subject_id``, ``subject_repr`` and ``input``. Raise
        ``django.core.exceptions.ValidationError`` for bad input, ``Http404`` for a subject the
        actor may not see. Default: this blueprint cannot be started by hand."""
        from django.core.exceptions import ValidationError

        raise ValidationError({"blueprint": f"{self.name} is started by the system, not by hand."})

    def step_name(self, state: str) -> str:
        return self.states.get(state, state)

    def run_state(self, state: str, ctx: StepContext) -> Outcome:
        handler = getattr(self, f"state_{state}", None)
        if handler is None:
            raise LookupError(f"Blueprint {self.name} has no state {state!r}")
        outcome = handler(ctx)
        allowed = self.transitions.get(state, ())
        if outcome.next_state not in allowed:
            raise RuntimeError(
                f"Blueprint {self.name}: {state} → {outcome.next_state} is not in the graph {allowed}"
            )
        return outcome

    # Hooks a blueprint may override -------------------------------------------------------

    def on_decision(self, run: Run, call: ToolCall, approved: bool) -> str:
        """The state to resume in after a reviewer decided on a parked tool call."""
        raise NotImplementedError

    def on_model_unavailable(self, ctx: StepContext, error: Exception) -> Outcome:
        """The model stayed unavailable after the retries: where to go (default: fail)."""
        return Outcome(FAILED, summary=f"Model unavailable: {error}", step_status="failure")

    def on_finished(self, run: Run) -> None:
        """Called inside the transaction that marks the run finished (any terminal status)."""

    def graph(self) -> list[tuple[str, str]]:
        return [(src, dst) for src, dsts in self.transitions.items() for dst in dsts]
