"""Where the shared Saleor data lives, and what a test does when it is missing.

``$KOM_SHARED_DIR`` or ``<repo>/../shared``: ``saleor/schema.graphql`` and the payloads a real
Saleor 3.23.28 sent, in ``saleor/captures-3.23.28/``. Without them a test is skipped with the
reason, except under ``CI=true``, where missing data is a failure (CI must run these tests).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    return Path(os.environ.get("KOM_SHARED_DIR") or REPO.parent / "shared")


def require(path: Path) -> Path:
    """``path`` if it exists; otherwise skip (locally) or fail (CI) the calling test."""
    if not path.exists():
        reason = f"shared Saleor data not found at {path} (set KOM_SHARED_DIR to the shared dir)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run these tests.")
        pytest.skip(reason)
    return path


def schema_path() -> Path:
    return require(shared_dir() / "saleor" / "schema.graphql")


def captures_dir() -> Path:
    return require(shared_dir() / "saleor" / "captures-3.23.28")


@dataclass(frozen=True)
class Capture:
    """One request a real Saleor sent: the exact body and the recorded headers/metadata."""

    name: str
    body: bytes
    meta: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.meta["event"])

    @property
    def signature(self) -> str:
        return str(self.meta["headers"]["Saleor-Signature"])

    def json(self) -> Any:
        return json.loads(self.body)


def captures(event: str | None = None) -> list[Capture]:
    """Every capture (or those of one lower-case event), in sequence order."""
    found = [
        Capture(raw.stem, raw.read_bytes(), json.loads(raw.with_suffix(".json").read_text()))
        for raw in sorted(captures_dir().glob("*.raw"))
    ]
    if not found:
        require(captures_dir() / "0001_order_created.raw")
    return [capture for capture in found if event is None or capture.event == event]


def capture(name: str) -> Capture:
    """One capture by file stem, e.g. ``"0015_transaction_refund_requested"``."""
    raw = require(captures_dir() / f"{name}.raw")
    return Capture(name, raw.read_bytes(), json.loads(raw.with_suffix(".json").read_text()))


def jwks() -> dict[str, Any]:
    keys: dict[str, Any] = json.loads(require(captures_dir() / "jwks.json").read_text())
    return keys


def capture_names(event: str | None = None) -> list[str]:
    """Capture stems for ``parametrize`` (collection must not skip): a placeholder when the
    data is missing, so the test itself runs and skips or fails through ``require``."""
    directory = shared_dir() / "saleor" / "captures-3.23.28"
    names = [
        raw.stem
        for raw in sorted(directory.glob("*.raw"))
        if event is None or raw.stem.split("_", 1)[-1] == event
    ]
    return names or ["0000_missing"]
