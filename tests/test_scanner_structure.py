"""The scanner package's structure (issue #12): settings named once, no cycles, clean edges."""

from __future__ import annotations

import ast
from pathlib import Path

from scanner import settings
from scanner.settings import ALL, Setting

ROOT = Path(__file__).resolve().parent.parent
SCANNER = ROOT / "scanner"


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_every_setting_is_named_once_with_its_why() -> None:
    keys = [s.key for s in ALL]
    assert len(keys) == len(set(keys))
    declared = [v for v in vars(settings).values() if isinstance(v, Setting)]
    assert set(map(id, declared)) == set(map(id, ALL))  # none left out of ALL
    for s in ALL:
        assert s.why and "\n" not in s.why
        assert s.accept(None) == s.default


def test_a_mistyped_stored_value_reads_as_the_default() -> None:
    assert settings.SOUND.accept("off") is True  # not a bool: the default
    assert settings.CLOCK_OFFSET.accept(True) is None  # JSON true is no offset
    assert settings.CLOCK_OFFSET.accept(-250) == -250
    assert settings.VERDICT_CLEAR_S.accept(3) == 3
    assert settings.RELAY_PIN.accept("GPIO17") == "GPIO17"


def test_no_config_key_is_spelled_outside_the_settings_module() -> None:
    """Only the store's own typed API touches raw config keys: scanner code reads and writes
    settings as `store.setting(X)` / `store.set_setting(X, v)`."""
    offenders = []
    for path in _modules("scanner"):
        if path.name == "store.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"config", "set_config"}
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
