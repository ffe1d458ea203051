"""The agent runtime: runs, steps, tool calls, engine, LLM, tools, policy (issue: agent runtime)."""
