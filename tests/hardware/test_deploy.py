"""hardware/deploy/: the kiosk's systemd unit passes `systemd-analyze verify`, its command line
is one the real CLI accepts, and the udev rules parse and name the unit's group.

`systemd-analyze verify` refuses a unit whose executable does not exist, and the unit runs
/opt/venue-gate/venv/bin/gate-scanner (where install.sh puts it). So the test verifies a temp
copy of the unit, unchanged but for that path, replaced by this venv's own `gate-scanner`.
verify only warns (exit 0) about unknown keys and bad values, so any line it prints about the
unit fails the test too. This systemd (252) has no `udevadm verify` (253+), so unless a newer
udevadm is there, each rule line is checked against udev's rule syntax here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

DEPLOY = ROOT / "hardware" / "deploy"
UNIT = DEPLOY / "venue-gate.service"
RULES = DEPLOY / "70-venue-gate.rules"
INSTALL = DEPLOY / "install.sh"
INSTALLED_EXE = "/opt/venue-gate/venv/bin/gate-scanner"


def _venv_gate_scanner() -> Path:
    exe = Path(sys.executable).parent / "gate-scanner"
    if not exe.exists():
        found = shutil.which("gate-scanner")
        assert found, "gate-scanner is not installed in this environment (pip install -e .)"
        exe = Path(found)
    return exe


def _unit_for_verify(tmp_path: Path, text: str | None = None) -> Path:
    text = UNIT.read_text() if text is None else text
    assert INSTALLED_EXE in text, f"the unit no longer runs {INSTALLED_EXE}: update this test"
    copy = tmp_path / UNIT.name  # same name: verify reports by unit name
    copy.write_text(text.replace(INSTALLED_EXE, str(_venv_gate_scanner())))
    return copy


def _verify(unit: Path) -> tuple[int, list[str]]:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (Debian package `systemd`; make system-deps)")
    proc = subprocess.run(
        [exe, "verify", "--man=no", str(unit)],
        cwd=unit.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    # Only lines about this unit: a dev machine may have broken units of its own.
    return proc.returncode, [line for line in lines if unit.name in line]


def _unit_sections(text: str) -> dict[str, dict[str, list[str]]]:
    """Unit file -> {section: {key: [values, in order]}} (keys repeat in systemd units)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"key outside a section: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    rc, about_unit = _verify(_unit_for_verify(tmp_path))
    assert rc == 0 and not about_unit, "\n".join(about_unit) or f"exit {rc}"


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (("Restart=always", "Restart=sometimes"), "a bad value (verify exits 0, warns)"),
        (("NoNewPrivileges=yes", "NoNewPrivilege=yes"), "an unknown key (verify exits 0, warns)"),
        (("[Service]", "[Servic]"), "a misspelt section (no ExecStart left: exit 1)"),
        ((INSTALLED_EXE, "/nonexistent/gate-scanner"), "a missing executable (exit 1)"),
    ],
)
def test_a_broken_unit_fails_the_check(tmp_path: Path, broken: tuple[str, str], why: str) -> None:
    """The check above is not blind: each break of the unit is caught, by exit code or output."""
    old, new = broken
    text = UNIT.read_text()
    assert old in text
    if old == INSTALLED_EXE:
        copy = tmp_path / UNIT.name
        copy.write_text(text.replace(old, new))
    else:
        copy = _unit_for_verify(tmp_path, text.replace(old, new, 1))
    rc, about_unit = _verify(copy)
    assert rc != 0 or about_unit, f"verify did not notice {why}"


def test_unit_runs_the_kiosk_on_a_console_with_the_devices_reachable() -> None:
    unit = _unit_sections(UNIT.read_text())
    svc = unit["Service"]
    one = {k: v[-1] for k, v in svc.items()}
    assert one["Restart"] == "always"
    assert one["User"] == one["Group"] == "venue-gate"
    assert one["StateDirectory"] == "venue-gate"
    assert one["TTYPath"] == "/dev/tty1"
    assert one["StandardInput"] == "tty"
    # Textual draws on stderr: the screen must go to the console, not the journal.
    assert one["StandardError"] == "tty"
    assert "getty@tty1.service" in unit["Unit"]["Conflicts"][-1]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # Hardened, yet cameras and serial scanners (hot-plugged) stay reachable: nothing that sets
    # up a device cgroup or a private /dev (ProtectClock= implies DeviceAllow=char-rtc).
    assert one["NoNewPrivileges"] == "yes" and one["ProtectSystem"] == "strict"
    for closing in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"):
        assert closing not in svc, f"{closing}= would hide /dev/video* or /dev/ttyACM*"

    # The command line is one the real CLI takes: run --kiosk, database in the state directory.
    from scanner.cli import _parser

    argv = shlex.split(one["ExecStart"])
    assert argv[0] == INSTALLED_EXE
    args = _parser().parse_args(argv[1:])
    assert args.command == "run" and args.kiosk
    assert Path(args.db).parent == Path("/var/lib") / one["StateDirectory"]


# udev rule syntax (udev(7)): comma-separated KEY[{attr}] OP "value"; matches use ==/!=,
# assignments =/+=/-=/:=.
_MATCH_KEYS = {
    "ACTION", "DEVPATH", "KERNEL", "NAME", "SYMLINK", "SUBSYSTEM", "DRIVER", "ATTR", "SYSCTL",
    "KERNELS", "SUBSYSTEMS", "DRIVERS", "ATTRS", "TAGS", "TAG", "ENV", "CONST", "TEST",
    "PROGRAM", "RESULT",
}  # fmt: skip
_ASSIGN_KEYS = {
    "NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "SECLABEL", "ATTR", "SYSCTL", "ENV", "TAG",
    "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS",
}  # fmt: skip
_TOKEN = re.compile(r'\s*([A-Z]+)(\{[^}]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')


def _rule_tokens(line: str) -> list[tuple[str, str, str]]:
    tokens, pos = [], 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        assert m, f"not udev rule syntax at column {pos + 1}: {line!r}"
        key, _attr, op, value, _sep = m.groups()
        if op in ("==", "!="):
            assert key in _MATCH_KEYS, f"{key} is not a match key: {line!r}"
        else:
            assert key in _ASSIGN_KEYS, f"{key} cannot be assigned: {line!r}"
        tokens.append((key, op, value))
        pos = m.end()
    return tokens


def test_udev_rules_parse_and_give_the_units_group_cameras_and_serial_scanners() -> None:
    text = RULES.read_text()
    udevadm = shutil.which("udevadm")
    has_verify = udevadm and subprocess.run([udevadm, "verify", "--help"], capture_output=True)
    if has_verify and has_verify.returncode == 0:  # udevadm verify: systemd 253+
        proc = subprocess.run([udevadm, "verify", str(RULES)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    group = _unit_sections(UNIT.read_text())["Service"]["Group"][-1]
    rules = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.endswith("\\"), f"line {n}: no continuation lines here"
        tokens = _rule_tokens(line)
        assert any(op in ("==", "!=") for _, op, _ in tokens), f"line {n} matches nothing"
        rules.append({key: value for key, _, value in tokens})
    for rule in rules:  # every device it opens goes to the unit's group, not to everyone
        assert rule.get("GROUP") == group, rule
        assert re.fullmatch(r"0[0-7]{2}0", rule.get("MODE", "")), rule

    def covered(subsystem: str, kernel: str | None = None) -> bool:
        return any(
            r.get("SUBSYSTEM") == subsystem and (kernel is None or r.get("KERNEL") == kernel)
            for r in rules
        )

    assert covered("video4linux"), "cameras (/dev/video*)"
    assert covered("tty", "ttyUSB[0-9]*") and covered("tty", "ttyACM[0-9]*"), "serial scanners"
    assert not covered("hidraw"), "hidraw is commented out: the gate reads no hidraw device"


def test_install_script_is_valid_shell_and_installs_what_the_unit_names() -> None:
    assert INSTALL.stat().st_mode & stat.S_IXUSR
    subprocess.run(["sh", "-n", str(INSTALL)], check=True)
    script = INSTALL.read_text()
    assert "PREFIX=/opt/venue-gate" in script and INSTALLED_EXE.startswith("/opt/venue-gate/venv/")
    assert f"/etc/udev/rules.d/{RULES.name}" in script
    assert f"/etc/systemd/system/{UNIT.name}" in script
    assert "useradd --system" in script
