"""The framework's contract test: a whole agent type in under 60 lines.

It looks for lockouts in the auth service's logs and unlocks the named account, which in this
blueprint always needs a person's approval; then it answers. Plans in code, not with a model.
"""

from django.core.exceptions import ValidationError

from agents import blueprints
from agents.blueprints import Action, LoopBlueprint


class Probe(LoopBlueprint):
    name = "probe"
    title = "Probe"
    description = "Finds lockouts in the auth logs and unlocks the account, with approval."
    tools = ("search_logs", "unlock_account")
    approval_tools = ("unlock_account",)
    default_config = {"max_iterations": 4, "budget_usd": 1.0, "max_actions_per_turn": 2}

    def start_input(self, *, tenant, actor, goal, subject_type, subject_id):
        if "@" not in subject_id:
            raise ValidationError({"subject_id": "Name the account's e-mail address."})
        return {
            "subject_type": "user",
            "subject_id": subject_id,
            "subject_repr": f"Lockouts of {subject_id}",
            "input": {"goal": goal or f"Unlock {subject_id} if locked out"},
        }

    def plan(self, state):
        email = state.ctx.run.subject_id
        state.data["subject_email"] = email  # whose account the tools may touch
        seen = {o["tool"]: o for o in state.observations}
        if "search_logs" not in seen:
            args = {"service": "auth", "query": "locked", "minutes": 60}
            return [Action("search_logs", args, thought="Look for lockouts first.")]
        if seen["search_logs"]["data"].get("total") and "unlock_account" not in seen:
            return [Action("unlock_account", {"user_email": email}, thought="It is locked.")]
        unlocked = seen.get("unlock_account", {}).get("ok")
        state.data["final"] = f"{email}: " + ("unlocked." if unlocked else "left as it was.")
        return []


def register() -> None:
    blueprints.register(Probe())
