"""The kinds of backend the hub can front, named once (hub/schema.py's CHECK uses them)."""

PRETIX = "pretix"
TICKETTOKEN = "tickettoken"
