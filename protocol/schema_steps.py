"""What the gate's and the hub's databases share about their numbered schema steps
(scanner/migrations.py, hub/migrations.py): a database that names a step this release does not
know was upgraded by a newer release, and is refused as it is, never downgraded."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike


class SchemaTooNew(Exception):
    """The database has steps this release does not know: a newer release upgraded it."""


def refuse_newer(
    applied: Iterable[str],
    known: Sequence[str],
    path: str | PathLike[str],
    release: str,
    instead: str,
) -> None:
    """SchemaTooNew when the database at `path` has applied a step this release of the `release`
    (gate, hub) does not know; the sentence ends with what to do `instead`."""
    unknown = [name for name in applied if name not in known]
    if unknown:
        raise SchemaTooNew(
            f"{path} was upgraded by a newer release of the {release} (schema step {unknown[-1]});"
            f" this release knows steps up to {known[-1]}. {instead}"
        )
