"""Blueprints: a pipeline is an explicit state graph, so a new agent type is a small module.

A blueprint declares its states and the transitions between them; the engine runs exactly
one state per Celery task (a checkpoint) and refuses a transition the graph does not have.
Each state is a method ``state_<name>(ctx) -> Outcome``. The console draws the graph.
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


_REGISTRY: dict[str, Blueprint] = {}


def register(blueprint: Blueprint) -> Blueprint:
    missing = [s for s in blueprint.transitions if s not in blueprint.states]
    if blueprint.initial not in blueprint.states or missing:
        raise ValueError(f"Blueprint {blueprint.name}: initial/transition states must be declared")
    _REGISTRY[blueprint.name] = blueprint
    return blueprint


def get(name: str) -> Blueprint:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise LookupError(f"No blueprint named {name!r} is registered") from None


def all_blueprints() -> list[Blueprint]:
    return sorted(_REGISTRY.values(), key=lambda b: b.name)
