"""A stateful fake Saleor 3.23.28 for KOM's end-to-end tests.

It follows ``shared/docs/saleor-protocol.md`` and what a real 3.23.28 did
(``shared/docs/saleor-observed.md``, ``shared/saleor/captures-3.23.28``):

- GraphQL at ``POST /graphql/`` executed by graphql-core against the real schema
  (``schema.py``), over in-memory state (``state.py``, ``presenters.py``): ``app``,
  ``order``, ``orders(filter: {updatedAt}, sortBy, first, after)``, ``transaction``,
  ``transactionEventReport``, ``transactionRequestAction``;
- ``GET /.well-known/jwks.json`` and signatures like Saleor's (``signing.py``);
- app installation from a manifest (``install.py``) and signed webhook deliveries whose
  payloads come from each webhook's own subscription document (``webhooks.py``);
- Saleor's transaction rules (``transactions.py``) and order rules (``orders.py``);
- the driver API tests use to play merchant (``driver.py``: ``FakeSaleor``; the order
  mutations behind it in ``order_actions.py``, the values it returns in ``views.py``).

Typical use::

    with serve_fake_saleor() as saleor:          # http://127.0.0.1:<port>
        app = await saleor.install(f"{kom_url}/api/manifest")
        order = saleor.create_order(lines=[("SKU-1", "Shirt", 2, "30.00", "0.25")],
                                    shipping=("10.00", "0.25"))
        txn = saleor.create_transaction(order.id, app, "klarna-order-1", "70.00")
        saleor.fulfill(order.id, {order.line(0): 1})
        await saleor.deliver_pending()           # FULFILLMENT_CREATED, ORDER_UPDATED, ...

Tests needing the schema call ``require_schema()`` first (skip without the shared dir,
fail under ``CI=true``).
"""

from .app import create_app, serve_fake_saleor
from .driver import ORDER_QUERY, FakeSaleor, InstallationFailed, InstalledApp, SaleorError
from .orders import LineSpec
from .schema import captures_dir, require_schema
from .signing import verify_detached, verify_jwt
from .views import CreatedFulfillment, CreatedOrder, EventView, TransactionView
from .webhooks import Attempt, Delivery

__all__ = [
    "ORDER_QUERY",
    "Attempt",
    "CreatedFulfillment",
    "CreatedOrder",
    "Delivery",
    "EventView",
    "FakeSaleor",
    "InstallationFailed",
    "InstalledApp",
    "LineSpec",
    "SaleorError",
    "TransactionView",
    "captures_dir",
    "create_app",
    "require_schema",
    "serve_fake_saleor",
    "verify_detached",
    "verify_jwt",
]
