"""Error codes of the device API that both sides branch on: the hub answers them, the gate
acts on them. Defined once here so the two can never drift apart."""

from __future__ import annotations

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
