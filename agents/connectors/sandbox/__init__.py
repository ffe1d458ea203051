"""The built-in sandbox connector: a directory, an endpoint manager and a monitoring system
whose state lives in this app's tables, so every tool call has a real, inspectable effect."""
