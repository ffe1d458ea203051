"""The chat assistant (portal and console): conversations kept per user and tenant, answers
from the knowledge base with citations, clarifying questions, and a ticket on request."""
