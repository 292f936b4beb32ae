"""A stateful local fake of Klarna's Order Management API, for demos, development and tests.

Independent of KOM's own Klarna client on purpose, so that it can catch the client's bugs.
Start with `create_app()` (module app.py documents the endpoints and the admin API),
`SandboxState` for programmatic access, and `Fault` for fault injection.
"""

from .app import SandboxApp, create_app
from .auth import DEMO_API_KEY, DEMO_CREDENTIALS, DEMO_KEY_USERNAME, DEMO_PASSWORD, DEMO_USERNAME, Credentials
from .errors import ApiError
from .faults import Fault
from .ledger import Allocation, LedgerCapture, LedgerLine, LedgerRefund, LedgerResult, allocate
from .state import Capture, Order, OrderStatus, Refund, RequestRecord, SandboxState

__all__ = [
    "DEMO_API_KEY",
    "DEMO_CREDENTIALS",
    "DEMO_KEY_USERNAME",
    "DEMO_PASSWORD",
    "DEMO_USERNAME",
    "Allocation",
    "ApiError",
    "Capture",
    "Credentials",
    "Fault",
    "LedgerCapture",
    "LedgerLine",
    "LedgerRefund",
    "LedgerResult",
    "Order",
    "OrderStatus",
    "Refund",
    "RequestRecord",
    "SandboxApp",
    "SandboxState",
    "allocate",
    "create_app",
]
