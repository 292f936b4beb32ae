"""Named crash points: places between two durable steps where a test can kill KOM for real.

``crash_point("provider-answered")`` does nothing unless ``KOM_CRASH_AT`` names that point;
then the process sends itself SIGKILL there (no exception, no cleanup, no flush: like a
power cut). ``KOM_CRASH_AT=provider-answered@3`` kills at the third time the point is
reached. The variable is read once, at the first crash point. The points, in the order a
pass reaches them (docs/reliability.md says which test kills at each):

- ``action-started``: the intent to call the provider is recorded, the call not made;
- ``provider-answered``: the provider carried out (or refused) a write, nothing recorded;
- ``outcome-recorded``: the answer is recorded, nothing reported;
- ``reports-queued``: the reports are in the outbox (requests marked done), none sent;
- ``report-sent``: the platform accepted a report, KOM has not marked it sent;
- ``mid-migration``: a schema migration is half applied.
"""

from __future__ import annotations

import os
import signal

POINTS = (
    "action-started",
    "provider-answered",
    "outcome-recorded",
    "reports-queued",
    "report-sent",
    "mid-migration",
)

_armed: tuple[str, int] | None = None
_read = False
_seen = 0


def _target() -> tuple[str, int] | None:
    global _armed, _read
    if not _read:
        _read = True
        name, _, nth = os.environ.get("KOM_CRASH_AT", "").partition("@")
        if name:
            if name not in POINTS:
                raise ValueError(f"KOM_CRASH_AT names no crash point: {name!r} (known: {', '.join(POINTS)})")
            _armed = (name, int(nth or 1))
    return _armed


def crash_point(name: str) -> None:
    """Kill this process here with SIGKILL if ``KOM_CRASH_AT`` names ``name``; else nothing."""
    global _seen
    target = _target()
    if target is None or target[0] != name:
        return
    _seen += 1
    if _seen >= target[1]:
        os.kill(os.getpid(), signal.SIGKILL)
