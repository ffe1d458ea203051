"""The requester portal: search first ("How can we help?"), answers from the knowledge base
with citations, a catalogue of short request forms, and "my requests" in plain words."""
