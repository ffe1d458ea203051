"""The generic queue of human decisions (issue: approvals and governance)."""
