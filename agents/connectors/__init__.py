"""Connectors: directory, endpoint management, monitoring, ticketing. The sandbox is built in."""
