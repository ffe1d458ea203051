"""The quota hooks the engine calls, on the rows of a real run."""

from __future__ import annotations

from agentops import quotas


def test_engine_hooks_meter_a_real_run_once(personas, parked):
    """The engine metered the run when it started and each step's tokens when it recorded it;
    reporting them again counts nothing more."""
    _, run, _ = parked
    steps = list(run.steps.all())
    assert quotas.used(personas.tenant, "runs") == 1  # by the engine
    assert not quotas.meter_run(run)
    for step in steps:
        quotas.meter_step(run, step)
        quotas.meter_step(run, step)
    assert quotas.used(personas.tenant, "runs") == 1
    expected = sum(s.tokens_prompt + s.tokens_completion for s in steps)
    assert expected > 0  # the scripted model reports usage per step
    assert quotas.used(personas.tenant, "tokens") == expected
    summary = quotas.usage_summary(personas.tenant)
    assert summary["per_blueprint"] == [{"name": run.agent_name, "runs": 1, "tokens": expected}]
