"""The engine: advances a run one checkpointed state at a time.

Each job has a module named for it:

- ``runner``: start a run, advance it state by state (a worker's task chains states, each
  checkpointed), cancel or fail it.
- ``claiming``: the conditional UPDATE that lets exactly one task take a run, the lease, the
  watchdog that re-enqueues runs whose worker died, enqueueing after commit.
- ``context``: ``StepContext``, what a blueprint state gets (the run, its checkpoint data, the
  model, guardrail events, redaction).
- ``tool_calls``: proposing tool calls, the policy verdict, executing and verifying them once
  (keyed by (run, tool, arguments); connectors dedupe on that key).
- ``approvals``: the run ↔ approval seam on the engine's side (request, resume on decision).
- ``llm``: the tenant's agent config and model backend.

Import the public names from here: ``from agents.engine import start_run``.
"""

from agents.engine.approvals import APPROVAL_HANDLER, on_approval_decided
from agents.engine.base import TransientStepError, args_hash
from agents.engine.claiming import claim, lease_seconds, watchdog
from agents.engine.context import StepContext
from agents.engine.llm import agent_config, backend_for, llm_config
from agents.engine.runner import (
    BlueprintDisabled,
    advance,
    mark_failed,
    request_cancel,
    start_run,
)

__all__ = [
    "APPROVAL_HANDLER",
    "BlueprintDisabled",
    "StepContext",
    "TransientStepError",
    "advance",
    "agent_config",
    "args_hash",
    "backend_for",
    "claim",
    "lease_seconds",
    "llm_config",
    "mark_failed",
    "on_approval_decided",
    "request_cancel",
    "start_run",
    "watchdog",
]
