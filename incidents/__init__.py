"""Tickets and incidents: the service-desk domain."""
