"""Hub configuration: defaults, then a JSON file, then GATE_HUB_* variables, then flags."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from hub.app import DEFAULT_ENROLLMENT_TTL_S, DEFAULT_MAX_BODY


class ConfigError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class HubConfig:
    db: str = "hub.sqlite"
    host: str = "127.0.0.1"
    port: int = 8080
    hub_url: str = ""  # what enrollment QRs point devices at; default http://host:port
    key_file: str = ""  # hub keyring (hub/keyring.py; or an older hex seed); next to the db
    client_max_size: int = DEFAULT_MAX_BODY
    enrollment_ttl_s: int = DEFAULT_ENROLLMENT_TTL_S
    log_level: str = "info"
    # One log line per request. Off by default: at a thousand checks a second it costs the
    # hub time and disk, and /metrics already counts requests and their latency.
    access_log: bool = False
    # How often the hub asks each backend (pretix...) what changed: a cancellation upstream
    # is refused at online gates within about this long.
    backend_pull_interval_s: int = 5

    @property
    def resolved_key_file(self) -> str:
        return self.key_file or f"{self.db}.hubkey"

    @property
    def resolved_hub_url(self) -> str:
        return self.hub_url or f"http://{self.host}:{self.port}"


_BOOLS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False}
_BOOLS |= {"no": False, "off": False}


def _coerce(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    types = {f.name: f.type for f in fields(HubConfig)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types:
            raise ConfigError(f"{source}: unknown setting {key}")
        if types[key] == "bool":
            text = str(value).strip().lower()
            if text not in _BOOLS:
                raise ConfigError(f"{source}: {key} must be true or false")
            out[key] = _BOOLS[text]
            continue
        try:
            out[key] = int(value) if types[key] == "int" else str(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{source}: {key} must be an integer") from None
    return out


def load_config(file: str | None, env: Mapping[str, str], flags: Mapping[str, Any]) -> HubConfig:
    config = HubConfig()
    file = file or env.get("GATE_HUB_CONFIG")
    if file:
        try:
            data = json.loads(Path(file).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config file {file}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: must hold a JSON object")
        config = replace(config, **_coerce(data, file))
    names = {f.name for f in fields(HubConfig)}
    from_env = {
        k[len("GATE_HUB_") :].lower(): v
        for k, v in env.items()
        if k.startswith("GATE_HUB_") and k[len("GATE_HUB_") :].lower() in names
    }
    config = replace(config, **_coerce(from_env, "environment"))
    given = {k: v for k, v in flags.items() if v is not None}
    config = replace(config, **_coerce(given, "command line"))
    if not 1 <= config.port <= 65535:
        raise ConfigError(f"port {config.port} is not a TCP port: give one from 1 to 65535")
    if not 1 <= config.backend_pull_interval_s <= 86_400:
        raise ConfigError("backend_pull_interval_s must be from 1 to 86400 seconds")
    return config


def load_or_create_seed(path: str | Path) -> bytes:
    """The hub's Ed25519 seed (hex in a 0600 file); created on first start."""
    path = Path(path)
    if path.exists():
        try:
            seed = bytes.fromhex(path.read_text().strip())
        except ValueError:
            raise ConfigError(f"key file {path} does not hold a hex seed") from None
        if len(seed) != 32:
            raise ConfigError(f"key file {path} must hold a 32-byte seed")
        return seed
    seed = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(seed.hex() + "\n")
    return seed
