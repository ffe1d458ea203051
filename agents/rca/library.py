"""What to check and what to do, per category (the analyser's strategy library)."""

from __future__ import annotations

TITLES = {
    "tool_schema_mismatch": "Tool schema mismatch",
    "rate_limited": "Rate limited by a dependency",
    "tool_permission": "Tool permission denied",
    "timeout": "Timeout",
    "planner_loop": "Planner loop",
    "retrieval_empty": "Retrieval came back empty",
    "prompt_regression": "Prompt regression in a new version",
    "unknown": "Unclassified failure",
}

VERIFY = {
    "tool_schema_mismatch": [
        "Compare the arguments sent with the tool's current schema or API contract.",
        "Check the tool's changelog for a new required field or a changed response shape.",
    ],
    "rate_limited": [
        "Check the dependency's rate-limit and quota dashboards at the time of the run.",
        "Look for retry-after headers and concurrent runs sharing the same key.",
    ],
    "tool_permission": [
        "Check the credentials and scopes the agent's tool uses in this environment.",
        "Confirm whether a role, scope or token changed around the run's time.",
    ],
    "timeout": [
        "Compare the call's latency with its configured deadline and recent latencies.",
        "Check the dependency's latency and saturation at the time of the run.",
    ],
    "planner_loop": [
        "Replay the repeated calls: same tool, same arguments, same result each time.",
        "Check the planner's stop condition and whether the result was ever read.",
    ],
    "retrieval_empty": [
        "Run the queries against the index directly and check it holds the expected documents.",
        "Check the index's freshness, filters and embedding model for this tenant.",
    ],
    "prompt_regression": [
        "Diff the prompts and model settings of the failing version and the baseline.",
        "Re-run the baseline input on both versions.",
    ],
    "unknown": [
        "Read the failing item's full error and the logs around it.",
    ],
}

ACTIONS = {
    "tool_schema_mismatch": [
        (
            "code_change",
            "Update the tool's argument schema",
            "Align the tool definition and the arguments the agent builds with the current API contract; add a contract test.",
            "high",
        ),
        (
            "monitoring",
            "Alert on schema validation failures",
            "Count validation errors per tool and alert on a rise after deployments.",
            "medium",
        ),
    ],
    "rate_limited": [
        (
            "config_change",
            "Back off and budget requests",
            "Honour retry-after with exponential backoff and a token bucket per key; raise the quota if the load is expected.",
            "high",
        ),
        ("monitoring", "Watch quota usage", "Alert before the quota is exhausted.", "medium"),
    ],
    "tool_permission": [
        (
            "config_change",
            "Restore the tool's permissions",
            "Grant the missing scope or role to the agent's credentials in this environment, least privilege.",
            "high",
        ),
        (
            "monitoring",
            "Alert on 401/403 from tools",
            "Detect credential expiry and permission changes before runs fail.",
            "medium",
        ),
    ],
    "timeout": [
        (
            "config_change",
            "Revisit the deadline",
            "Set the tool's timeout from its latency percentiles, with a retry for idempotent calls.",
            "high",
        ),
        (
            "investigation",
            "Find the slow dependency",
            "Trace the slow call and its downstream services.",
            "medium",
        ),
    ],
    "planner_loop": [
        (
            "code_change",
            "Stop repeated identical calls",
            "Detect the same tool with the same arguments and result and stop or re-plan; cap iterations.",
            "high",
        ),
        (
            "prompt_change",
            "Make the planner use results",
            "Tell the planner what a repeated result means and when to give up.",
            "medium",
        ),
    ],
    "retrieval_empty": [
        (
            "data_fix",
            "Fill or fix the index",
            "Index the missing documents or fix the filters that exclude them.",
            "high",
        ),
        (
            "code_change",
            "Handle empty retrieval",
            "When retrieval is empty, say so or ask for more detail instead of failing.",
            "medium",
        ),
    ],
    "prompt_regression": [
        (
            "rollback",
            "Roll back to the baseline version",
            "Serve the baseline version until the new prompt passes the baseline's inputs.",
            "high",
        ),
        (
            "testing",
            "Add the input to the regression set",
            "Gate releases on the inputs the baseline passed.",
            "medium",
        ),
    ],
    "unknown": [
        (
            "investigation",
            "Investigate the failing item",
            "Read the full error and surrounding logs of the cited item.",
            "medium",
        ),
    ],
}

DATA_COLLECTION = [
    (
        "monitoring",
        "Enable detailed tracing",
        "Send every tool call with its arguments hash, status code, error class and message, and each step's status.",
        "high",
    ),
    (
        "code_change",
        "Add structured error codes",
        "Report error_type and a specific error message instead of a generic one, so failures can be classified.",
        "medium",
    ),
    (
        "monitoring",
        "Link runs to a baseline",
        "Send correlation ids that name the input, so a new version can be compared with one that passed.",
        "low",
    ),
]


def actions(category: str) -> list[dict]:
    return [_item(a) for a in ACTIONS.get(category, ACTIONS["unknown"])]


def data_collection() -> list[dict]:
    return [_item(a) for a in DATA_COLLECTION]


def _item(a: tuple) -> dict:
    kind, title, description, priority = a
    return {"type": kind, "title": title, "description": description, "priority": priority}
