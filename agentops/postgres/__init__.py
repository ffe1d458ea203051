"""Our PostgreSQL database backend (``ENGINE = "agentops.postgres"``): Django's psycopg 3
backend with server-side binding and prepared statements sized for the worker's hot
statements (``base``), and ``Statements``: several statements sent in one round trip as one
psycopg pipeline, each of them preparable (``statements``)."""
