"""The one public entry point from what a reader sends to a credential or a refusal."""

from __future__ import annotations

import logging

from protocol.backend_codes import parse_backend_code
from protocol.credential import CredentialFormat, ParseContext, ParseResult, Refusal
from protocol.legacy import parse_legacy
from protocol.native import looks_native, parse_native
from protocol.normalize import normalize_scan
from protocol.reasons import Reason

MAX_INPUT_CHARS = 4096  # far above any format we read; longer input is noise or an attack

log = logging.getLogger(__name__)


def parse_credential(raw: str, ctx: ParseContext) -> ParseResult:
    """Never raises: every input ends as a Credential or a typed Refusal."""
    try:
        return _parse(raw, ctx)
    except Exception:  # the guarantee: a reader's garbage must never crash a gate
        log.exception("credential parser failed on an input of %d chars", len(raw or ""))
        return Refusal.of(Reason.MALFORMED)


def _parse(raw: str, ctx: ParseContext) -> ParseResult:
    if not isinstance(raw, str) or len(raw) > MAX_INPUT_CHARS:
        return Refusal.of(Reason.MALFORMED, message="Input too long to be a ticket code.")
    text = normalize_scan(raw)
    if not text:
        return Refusal.of(Reason.MALFORMED, message="Empty scan.")
    if looks_native(text):
        return parse_native(text, ctx)
    legacy = parse_legacy(text, ctx)
    if legacy is not None:
        return legacy
    # Last: a code a ticketing system printed. pretix's never take a native code's shape:
    # random ones are 12-64 characters; a signed one of 147+ characters without base64's '='
    # (not in base45) needs pretix ids past 2^28.
    backend = parse_backend_code(text, ctx)
    if backend is not None:
        return backend
    return Refusal.of(Reason.MALFORMED, CredentialFormat.UNKNOWN)
