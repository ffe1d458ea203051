"""Intake: the ways tickets enter besides the console and the JSON API (inbound webhooks)."""
