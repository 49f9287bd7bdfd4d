"""The device <-> hub messages, defined once: msgspec Structs that both sides encode, decode and
validate with, and that /openapi.json documents (hub/openapi.py reads their JSON Schema), so
the gate's upload, the hub's check of it and the document can never drift apart.

Field names and meanings are the wire format gates and hubs already speak: a Struct here may
add an optional field, never rename or retype one. Requests (what a device sends) refuse
unknown fields and carry every limit the hub enforces (protocol/limits.py); answers and pushed
messages (what the hub sends) accept unknown fields, so a newer hub never breaks an older gate.

Also here: the error codes both sides branch on (the hub answers them, the gate acts on them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Final, Literal, TypeVar, get_args, get_origin

import msgspec
import msgspec.inspect
from msgspec import UNSET, Meta, Struct, UnsetType

from protocol.limits import EARLIEST_MS, LATEST_MS, MAX_CLOCK_OFFSET_MS, MAX_COUNT, MAX_SEQ
from protocol.reasons import Reason, Verdict

# A scan under a (device, seq) the hub already holds with other content: the gate's database
# was wiped, replaced or copied. The hub refuses it (never acknowledges and drops it); the
# gate keeps the scan and shows a fault until it is re-enrolled.
SEQ_CONFLICT = "seq_conflict"
SEQ_CONFLICT_MESSAGE = (
    "The hub already holds another scan under this device and sequence number: this gate's "
    "database was wiped, replaced or copied. Re-enrol the gate; its scans stay on it."
)

# A deactivated device: the hub's HTTP refusal code, and the live socket's close code and
# reason (private range 4000-4999; "403" as in the HTTP refusal). A gate that sees either
# stops reconnecting until it is enrolled again.
DEVICE_DEACTIVATED = "device_deactivated"
DEACTIVATED_CLOSE_CODE = 4403

# A request signed by a device id the hub has never enrolled (another hub's gate, or a hub
# whose database was replaced): the hub's 401, the gate's cue to enrol again.
UNKNOWN_DEVICE = "unknown_device"

MAX_BATCH = 500  # scans per upload
MAX_PAYLOAD = 4096  # characters of a scanned code
MAX_TICKET_ID = 64
MAX_EVENT_ID = 64
MAX_MESSAGE = 1000  # characters of the verdict's message a gate showed
MAX_GATE_NAME = 200
MAX_APP_VERSION = 50
MAX_MANIFESTS = 100  # events in a heartbeat's manifest_revisions
# A character str.strip() keeps (the hub's hub/errors.py NOT_BLANK, which this must equal):
# spelt out, since JSON Schema's \s (ECMA-262) and Python's differ. Text with this pattern
# has something in it besides spaces; the hub stores it stripped.
NOT_BLANK = r"[^\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"

Seq = Annotated[int, Meta(ge=1, le=MAX_SEQ)]
Revision = Annotated[int, Meta(ge=0, le=MAX_SEQ)]  # also cursors and key-set versions
TimeMs = Annotated[int, Meta(ge=EARLIEST_MS, le=LATEST_MS - 1)]
OffsetMs = Annotated[int, Meta(ge=-MAX_CLOCK_OFFSET_MS, le=MAX_CLOCK_OFFSET_MS)]
EventId = Annotated[str, Meta(max_length=MAX_EVENT_ID, pattern=NOT_BLANK)]
# manifests/admission_types.py Direction's values, spelt out: protocol/ does not import
# manifests/ (which imports protocol/). A decoded direction is this text; Direction(text) or
# ScanFact.of makes it the enum.
DirectionName = Literal["entry", "exit"]


# -- enrolment: POST /api/device/enroll, then GET /api/device/me ------------------------------

MAX_CODE = 100  # characters of an enrolment code in clear
MAX_SEALED_CODE = 2000
MAX_HARDWARE_ID = 128
# An Ed25519 public key as URL-safe base64 without padding (protocol/signing.py b64encode).
DEVICE_KEY = r"^[A-Za-z0-9_-]{43}$"
# The hub's code for a public_key that is no Ed25519 key (or not in DEVICE_KEY's format).
INVALID_PUBLIC_KEY = "invalid_public_key"
ENROLL_ONE_OF = ("code", "sealed_code")  # an enrolment sends exactly one of these


class Enroll(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Spend a one-time enrolment code: in clear (`code`, for API clients) or, as gates send
    it, sealed to the hub's key together with this device's key and hardware id
    (`sealed_code`, protocol/enroll_seal.py). Exactly one of the two: msgspec cannot say so,
    hub/openapi.py adds it to the schema as oneOf and the hub checks it first (read_enroll).
    Text is stored stripped."""

    code: Annotated[str, Meta(max_length=MAX_CODE, pattern=NOT_BLANK)] | None = None
    sealed_code: Annotated[str, Meta(max_length=MAX_SEALED_CODE, pattern=NOT_BLANK)] | None = None
    hardware_id: Annotated[str, Meta(max_length=MAX_HARDWARE_ID, pattern=NOT_BLANK)]
    public_key: Annotated[str, Meta(max_length=100, pattern=DEVICE_KEY)]
    app_version: Annotated[str, Meta(max_length=MAX_APP_VERSION, pattern=NOT_BLANK)] | None = None


class OwnDevice(Struct, kw_only=True):
    """What a device may know about itself, the answer to its enrolment and to
    GET /api/device/me: its identity and place, and the hub key that signs now (the
    manifest key id it signs with; the rest of the trusted set comes with the first sync)."""

    device_id: str
    venue_id: str
    hardware_id: str
    name: str
    gate_id: str | None
    zone: str | None
    active: bool
    hub_public_key: str
    hub_key_fingerprint: str
    manifest_key_id: int


# -- the scan upload: POST /api/device/scans ------------------------------------------------


class Scan(Struct, kw_only=True, forbid_unknown_fields=True):
    """One row of a gate's scan log as uploaded (scanner/scanlog.py ScanRecord.to_json).
    Times are on the device's clock; `clock_offset_ms` (hub ≈ device + offset) overrides the
    batch's for this scan, and null says the scan has none (stored as 0)."""

    seq: Seq
    at_ms: TimeMs
    payload: Annotated[str, Meta(max_length=MAX_PAYLOAD)]
    ticket_id: Annotated[str, Meta(max_length=MAX_TICKET_ID)] | None = None
    verdict: Verdict
    reason: Reason
    message: Annotated[str, Meta(max_length=MAX_MESSAGE)] = ""
    direction: DirectionName
    gate: Annotated[str, Meta(max_length=MAX_GATE_NAME)] = ""  # the gate's own name, for audit
    manual: bool = False  # staff looked the ticket up: no code was read
    confirmed: bool | None = None  # attention only: None pending, True let in, False turned away
    uploaded: Annotated[bool, Meta(description="The gate's own flag; ignored.")] = False
    clock_offset_ms: OffsetMs | UnsetType | None = UNSET


class ScanBatch(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An upload. `peer_cursor` asks for other gates' movements stored after it (absent:
    none); `clock_offset_ms` is the device's measured offset for the batch. What the gate
    does not know it leaves out (encoded without its nulls)."""

    scans: Annotated[
        list[Scan],
        Meta(
            min_length=1,
            max_length=MAX_BATCH,
            description="Each scan's seq is its own within the batch (JSON Schema cannot "
            "say so): a repeat is refused with 400 invalid_scan.",
        ),
    ]
    event_id: EventId | None = None
    manifest_revision: Revision | None = None
    clock_offset_ms: OffsetMs | None = None
    peer_cursor: Revision | None = None


class RefusedScan(Struct):
    """A scan the hub would not store (SEQ_CONFLICT): it stays pending on the gate."""

    seq: int
    code: str
    message: str


class PeerEntry(Struct):
    """A movement at another gate of the event, in the upload's answer. `at_ms` is on the
    hub's clock and deliberately unbounded: a stored absurd time must not make a gate refuse
    the whole answer."""

    ticket_id: str
    at_ms: int
    direction: DirectionName
    gate_name: str
    device_id: str
    seq: int
    verdict: Verdict


class ScanBatchAnswer(Struct, kw_only=True):
    """What the hub stored and learnt. `acked`: the seqs it holds now; `refused`: those it
    will not hold (only when there are any). With an event named: the manifest `revision`
    (pull a delta when it moved); with a `peer_cursor` sent also `peer_scans`, the cursor to
    send next time and `peer_more` when more wait."""

    acked: list[int]
    refused: list[RefusedScan] | UnsetType = UNSET
    revision: int | UnsetType = UNSET
    peer_scans: list[PeerEntry] | UnsetType = UNSET
    peer_cursor: int | UnsetType = UNSET
    peer_more: bool | UnsetType = UNSET


# -- the heartbeat: POST /api/device/heartbeat ------------------------------------------------


class Heartbeat(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A device's health report; every field may be left out or null (the gate leaves out
    what it does not know)."""

    app_version: Annotated[str, Meta(max_length=MAX_APP_VERSION, pattern=NOT_BLANK)] | None = None
    pending_uploads: Annotated[int, Meta(ge=0, le=MAX_COUNT)] | None = None
    manifest_revisions: Annotated[dict[str, Revision], Meta(max_length=MAX_MANIFESTS)] | None = None
    hub_keys_version: Revision | None = None


class HeartbeatAnswer(Struct):
    """The hub's clock (the gate measures its offset from it), its key-set version (a new
    one: fetch /api/device/hub-keys) and the event the venue's gates should hold now."""

    ok: bool
    hub_time_ms: int
    hub_keys_version: int
    event_id: str | None


# -- the online check: POST /api/device/check ------------------------------------------------


class Check(Struct, forbid_unknown_fields=True):
    """`seq` is the device's scan-log sequence number, so a retried check returns the stored
    decision and stores nothing. `direction` overrides the gate's."""

    event_id: EventId
    payload: Annotated[str, Meta(max_length=MAX_PAYLOAD, pattern=NOT_BLANK)]
    seq: Seq
    direction: DirectionName | None = None


class Display(Struct):
    """What the verdict screen may show (manifests/admission_types.py DisplayFacts)."""

    holder: str | None = None
    tier: str | None = None
    zone: str | None = None
    seat: str | None = None
    entries_today: int | None = 0
    comp: bool | None = False
    note: str | None = None


class CheckAnswer(Struct, kw_only=True):
    """The engine's decision (manifests/admission_types.py Decision.to_json) and where it was
    stored; `repeated`: the seq was checked before and this is that decision."""

    verdict: Verdict
    reason: Reason
    message: str
    ticket_id: str | None
    display: Display
    detail: str | UnsetType = UNSET
    scan_id: int | None
    seq: int
    repeated: bool
    revision: int
    hub_time_ms: int


# -- the live channel: GET /api/device/live (WebSocket) ----------------------------------------


class Hello(Struct, tag_field="type", tag="hello"):
    """The hub's first message on an open socket."""

    device_id: str
    event_id: str | None = None


class EntryState(Struct, kw_only=True, tag_field="type", tag="entry_state"):
    """A scan another gate of the venue just stored, on the hub's clock and under the hub's
    name for that gate: the same movement the upload answer's peer entries carry."""

    ticket_id: str
    event_id: str | None = None
    at_ms: int
    direction: DirectionName
    gate_name: str = ""
    device_id: str
    seq: int
    verdict: Verdict
    counted: bool = True


class TicketsChanged(Struct, tag_field="type", tag="tickets_changed"):
    """Tickets of an event changed at the hub (its ticketing backend cancelled, refunded or
    sold some): sync now instead of at the next poll, so a refund is refused in seconds."""

    event_id: str


class Entries(Struct, tag_field="type", tag="entries"):
    """Several EntryStates in one message: those queued for a device while the hub was still
    sending to it. Only for a device that asked (LIVE_BATCH_QUERY on its socket's URL): a
    gate of an older release skips a type it does not know, and would lose the live half of
    these (its sync still brings them)."""

    entries: list[EntryState]


LIVE_BATCH_QUERY = "batch"  # `?batch=1`: this device reads Entries


def entries_json(entries: Sequence[str]) -> str:
    """An Entries message from EntryStates already encoded (the hub encodes each stored scan
    once for every device it goes to, then batches per device)."""
    return '{"type":"entries","entries":[' + ",".join(entries) + "]}"


LiveMessage = Hello | EntryState | Entries | TicketsChanged


# -- errors -----------------------------------------------------------------------------------


class ErrorDetail(Struct):
    code: Annotated[str, Meta(description="Machine-readable error code.")]
    message: Annotated[str, Meta(description="A sentence for people.")]


class ErrorBody(Struct):
    """Every refusal: `{"error": {"code", "message"}}`."""

    error: ErrorDetail


# -- decoding ---------------------------------------------------------------------------------

T = TypeVar("T")
Path = tuple[str | int, ...]
MALFORMED: Final = "malformed_json"
UNKNOWN_FIELD: Final = "unknown_field"
MISSING_FIELD: Final = "missing_field"
INVALID_FIELD: Final = "invalid_field"
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]|\[\.\.\.\]")
_MISSING = re.compile(r"^Object missing required field `(\w+)`$")


class WireError(ValueError):
    """A message that is not what its Struct says: `code` is one of MALFORMED, UNKNOWN_FIELD,
    MISSING_FIELD, INVALID_FIELD; `path` where it is (("scans", 3, "seq")); `detail` what is
    wrong, in words."""

    def __init__(self, code: str, path: Path, detail: str) -> None:
        super().__init__(f"{where(path) or 'body'}: {detail}")
        self.code, self.path, self.detail = code, path, detail


def where(path: Path) -> str:
    """("scans", 3, "seq") -> "scans[3].seq"."""
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}" if out else step
    return out


def _integral(text: str) -> int | float:
    """5591.0 is an integer to JSON Schema, so it is one here too."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _parse(raw: bytes) -> Any:
    """Plain JSON as the hub reads it (hub/errors.py parse_json_object): no NaN or Infinity."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_integral)
    except (ValueError, RecursionError) as exc:
        raise WireError(MALFORMED, (), f"not valid JSON: {exc}") from None


def decode(raw: bytes, into: type[T], parse: Callable[[bytes], Any] = _parse) -> T:
    """`raw` as `into`, or a WireError. A valid message takes msgspec's one fast pass; only one
    it refused is read again as plain JSON (`parse`, which may raise its own error for what is
    not JSON at all) to say what is wrong the way the hub always has: an unknown field before
    any bad value, and an integral number such as 3.0 taken as the integer it is."""
    try:
        return msgspec.json.decode(raw, type=into)
    except msgspec.MsgspecError:
        pass
    return convert(parse(raw), into)


def convert(value: Any, into: type[T]) -> T:
    """A parsed JSON value as `into`, or a WireError naming the first problem."""
    unknown = _unknown(value, into, ())
    if unknown is not None:
        raise WireError(UNKNOWN_FIELD, unknown, f"unknown field {unknown[-1]}")
    try:
        return msgspec.convert(value, into)
    except msgspec.ValidationError as exc:
        raise refusal(exc) from None


def refusal(exc: msgspec.ValidationError) -> WireError:
    """msgspec's "Expected `int` >= 1 - at `$.scans[3].seq`" as a WireError."""
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any text
    path: Path = tuple(
        int(m.group(2)) if m.group(2) else m.group(1) or "..."
        for m in _STEP.finditer(match["path"] or "")
    )
    what = match["what"]
    missing = _MISSING.match(what)
    if missing:
        return WireError(MISSING_FIELD, (*path, missing[1]), "required")
    return WireError(INVALID_FIELD, path, what[:1].lower() + what[1:])


def _unknown(value: Any, into: Any, path: Path) -> Path | None:
    """The first field `into` (a Struct refusing unknown fields, or a list of them) does not
    know, depth first in document order; None when there is none."""
    if get_origin(into) is Annotated:
        into = get_args(into)[0]
    if get_origin(into) is list and isinstance(value, list):
        (item,) = get_args(into)
        for index, element in enumerate(value):
            found = _unknown(element, item, (*path, index))
            if found is not None:
                return found
        return None
    if not (isinstance(into, type) and issubclass(into, Struct) and isinstance(value, dict)):
        return None
    fields = {f.name: f.type for f in msgspec.structs.fields(into)}
    if into.__struct_config__.forbid_unknown_fields:
        for name in value:
            if name not in fields:
                return (*path, name)
    for name, element in value.items():
        found = _unknown(element, fields.get(name), (*path, name))
        if found is not None:
            return found
    return None


# -- the enrolment body, checked as the hub always has ------------------------------------------


def read_enroll(value: dict[str, Any]) -> Enroll:
    """A parsed enrolment body as Enroll, or a WireError whose `detail` is the sentence the
    hub answers: checked in the order the hub always did (an unknown field, the first by name;
    then exactly one of ENROLL_ONE_OF; then field by field in Enroll's order), null counting
    as absent. `code` is one of UNKNOWN_FIELD, MISSING_FIELD, INVALID_FIELD and
    INVALID_PUBLIC_KEY (a public_key of the right length not in DEVICE_KEY's format)."""
    fields = _ENROLL_FIELDS
    unknown = sorted(set(value) - {f.name for f in fields})
    if unknown:
        raise WireError(UNKNOWN_FIELD, (unknown[0],), f"Unknown field: {unknown[0]}.")
    given = [name for name in ENROLL_ONE_OF if value.get(name) is not None]
    if len(given) != 1:
        raise WireError(
            INVALID_FIELD if given else MISSING_FIELD,
            (),
            f"Send exactly one of {' or '.join(ENROLL_ONE_OF)}.",
        )
    for field in fields:
        item = value.get(field.name)
        if item is None:
            if field.required:
                raise WireError(MISSING_FIELD, (field.name,), f"Field {field.name} is required.")
            continue
        _check_text(field.name, item, _text_type(field.type))
    try:
        return msgspec.convert({k: v for k, v in value.items() if v is not None}, Enroll)
    except msgspec.ValidationError as exc:  # checked above: only a new field's limit gets here
        raise refusal(exc) from None


def _text_type(info: msgspec.inspect.Type) -> msgspec.inspect.StrType:
    """The StrType of a text field (`str` or `str | None`) as msgspec.inspect shows it."""
    if isinstance(info, msgspec.inspect.UnionType):
        (info,) = (t for t in info.types if not isinstance(t, msgspec.inspect.NoneType))
    assert isinstance(info, msgspec.inspect.StrType)
    return info


_enroll_info = msgspec.inspect.type_info(Enroll)
assert isinstance(_enroll_info, msgspec.inspect.StructType)
_ENROLL_FIELDS = _enroll_info.fields
# A text field's own code for a value not in its format (others: INVALID_FIELD).
FORMAT_CODES = {"public_key": INVALID_PUBLIC_KEY}


def _check_text(name: str, item: object, info: msgspec.inspect.StrType) -> None:
    """One text field as the hub's Fields.text checked it: a string, 1 to max_length
    characters with something besides spaces, then its pattern, anchored as JSON Schema reads
    it (`$` the very end, where Python would also take the place before a final newline)."""
    if not isinstance(item, str):
        raise WireError(INVALID_FIELD, (name,), f"Field {name} must be a string.")
    limit = info.max_length
    if not item.strip() or (limit is not None and len(item) > limit):
        raise WireError(INVALID_FIELD, (name,), f"Field {name} must be 1 to {limit} characters.")
    pattern = info.pattern or NOT_BLANK
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    if pattern != NOT_BLANK and re.search(pattern, item) is None:
        code = FORMAT_CODES.get(name, INVALID_FIELD)
        raise WireError(code, (name,), f"Field {name} is not in its format.")
