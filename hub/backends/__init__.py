"""Upstream ticketing systems the hub fronts (pretix, TicketToken): the seam and adapters."""
