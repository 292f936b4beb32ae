"""The manifest Saleor fetches at install, built from manifest.json and the subscriptions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from graphql import GraphQLEnumType, GraphQLObjectType, GraphQLSchema, InlineFragmentNode, parse

from adapters.saleor.manifest import (
    BY_SALEOR_EVENT,
    TEMPLATE,
    WEBHOOKS,
    ManifestError,
    WebhookSpec,
    build_manifest,
    subscription_query,
)
from tests.saleor import shared

PUBLIC = "https://kom.example.com"


@pytest.fixture
def manifest() -> dict[str, Any]:
    return build_manifest(PUBLIC, "1.2.3")


def test_identity_and_permissions(manifest: dict[str, Any]) -> None:
    assert manifest["id"] == "app.kom.order-management"
    assert manifest["version"] == "1.2.3"
    assert manifest["name"] == "KOM – Klarna & Kustom Order Management"
    assert manifest["author"] == "KOM" and manifest["about"]
    assert manifest["permissions"] == ["HANDLE_PAYMENTS", "MANAGE_ORDERS"]
    assert manifest["requiredSaleorVersion"] == ">=3.21 <4"
    json.dumps(manifest)  # served as JSON as is


def test_urls_are_absolute(manifest: dict[str, Any]) -> None:
    assert manifest["appUrl"] == f"{PUBLIC}/app"
    assert manifest["tokenTargetUrl"] == f"{PUBLIC}/api/register"
    urls = [value for key, value in manifest.items() if key.endswith("Url")]
    urls += [hook["targetUrl"] for hook in manifest["webhooks"]]
    assert {"homepageUrl", "supportUrl"} <= manifest.keys()
    assert all(url.startswith(f"{PUBLIC}/") for url in urls), urls


def test_public_url_with_a_path_prefix_and_trailing_slash() -> None:
    manifest = build_manifest("https://shop.example.com/kom/", "1")
    assert manifest["appUrl"] == "https://shop.example.com/kom/app"
    assert manifest["webhooks"][0]["targetUrl"].startswith("https://shop.example.com/kom/api/webhooks/")


@pytest.mark.parametrize("url", ["", "kom.example.com", "/app", "ftp://x.example", "https://x.example/?a=1"])
def test_bad_public_url(url: str) -> None:
    with pytest.raises(ManifestError):
        build_manifest(url, "1")


def test_every_webhook_has_its_query_and_kind(manifest: dict[str, Any]) -> None:
    hooks = {hook["name"]: hook for hook in manifest["webhooks"]}
    assert hooks.keys() == WEBHOOKS.keys()
    for name, spec in WEBHOOKS.items():
        hook = hooks[name]
        assert hook["targetUrl"] == f"{PUBLIC}/api/webhooks/{name}" == PUBLIC + spec.path
        assert hook["isActive"] is True
        assert hook["query"] == subscription_query(name) == spec.document.read_text()
        kind, other = ("syncEvents", "asyncEvents") if spec.sync else ("asyncEvents", "syncEvents")
        assert hook[kind] == [spec.event] and other not in hook


def test_webhook_table() -> None:
    table = {spec.name: (spec.event, spec.sync) for spec in WEBHOOKS.values()}
    assert table == {
        "fulfillment-created": ("FULFILLMENT_CREATED", False),
        "fulfillment-approved": ("FULFILLMENT_APPROVED", False),
        "fulfillment-canceled": ("FULFILLMENT_CANCELED", False),
        "order-cancelled": ("ORDER_CANCELLED", False),
        "payment-gateway-initialize-session": ("PAYMENT_GATEWAY_INITIALIZE_SESSION", True),
        "transaction-initialize-session": ("TRANSACTION_INITIALIZE_SESSION", True),
        "transaction-process-session": ("TRANSACTION_PROCESS_SESSION", True),
        "transaction-charge-requested": ("TRANSACTION_CHARGE_REQUESTED", True),
        "transaction-refund-requested": ("TRANSACTION_REFUND_REQUESTED", True),
        "transaction-cancelation-requested": ("TRANSACTION_CANCELATION_REQUESTED", True),
        "app-deleted": ("APP_DELETED", False),
    }
    assert BY_SALEOR_EVENT["transaction_refund_requested"] is WEBHOOKS["transaction-refund-requested"]
    assert WEBHOOKS["transaction-cancelation-requested"].typename == "TransactionCancelationRequested"


@pytest.mark.contract
@pytest.mark.parametrize("spec", WEBHOOKS.values(), ids=list(WEBHOOKS))
def test_query_subscribes_to_the_declared_event(spec: WebhookSpec, saleor_schema: GraphQLSchema) -> None:
    # Saleor infers the events of a webhook from its query's fragments; they must be the
    # declared event only, or Saleor would refuse the manifest (or deliver other events).
    (operation,) = parse(subscription_query(spec.name)).definitions
    fragments = [
        node
        for node in operation.selection_set.selections[0].selection_set.selections  # type: ignore[attr-defined]
        if isinstance(node, InlineFragmentNode)
    ]
    assert [f.type_condition.name.value for f in fragments if f.type_condition] == [spec.typename]
    event_type = saleor_schema.get_type(spec.typename)
    assert isinstance(event_type, GraphQLObjectType)
    assert "Event" in {interface.name for interface in event_type.interfaces}
    enum_name = "WebhookEventTypeSyncEnum" if spec.sync else "WebhookEventTypeAsyncEnum"
    enum = saleor_schema.get_type(enum_name)
    assert isinstance(enum, GraphQLEnumType) and spec.event in enum.values


@pytest.mark.contract
def test_paths_and_event_headers_match_what_saleor_sent() -> None:
    # The captures were made by a stub app using the same webhook names and paths.
    seen = 0
    for capture in shared.captures():
        spec = WEBHOOKS.get(capture.meta["webhook_name"])
        if spec is None:
            continue
        seen += 1
        assert capture.meta["path"] == spec.path
        assert capture.meta["headers"]["Saleor-Event"] == spec.saleor_event
        assert BY_SALEOR_EVENT[capture.meta["headers"]["Saleor-Event"]] is spec
    assert seen >= 5


def _template_with(tmp_path: Path, change: Any) -> Path:
    template = json.loads(TEMPLATE.read_text())
    change(template)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(template))
    return path


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t["webhooks"].pop(),
        lambda t: t["webhooks"][0].update(asyncEvents=["ORDER_UPDATED"]),
        lambda t: t["webhooks"][3].update(asyncEvents=t["webhooks"][3].pop("syncEvents")),
        lambda t: t["webhooks"][0].update(targetUrl="/elsewhere"),
        lambda t: t["webhooks"][0].update(query="subscription { event { __typename } }"),
        lambda t: t.pop("webhooks"),
    ],
)
def test_template_must_agree_with_webhooks(tmp_path: Path, change: Any) -> None:
    with pytest.raises(ManifestError):
        build_manifest(PUBLIC, "1", template=_template_with(tmp_path, change))


def test_template_has_no_absolute_urls_or_queries() -> None:
    template = json.loads(TEMPLATE.read_text())
    assert "version" not in template
    assert all(value.startswith("/") for key, value in template.items() if key.endswith("Url"))
    assert all("query" not in hook and hook["targetUrl"].startswith("/") for hook in template["webhooks"])


def test_the_identifier_kom_recognises_its_transactions_by_is_the_manifest_id() -> None:
    import json

    from adapters.saleor.manifest import TEMPLATE
    from adapters.saleor.snapshot import APP_IDENTIFIER, created_by_kom

    assert json.loads(TEMPLATE.read_text())["id"] == APP_IDENTIFIER
    assert created_by_kom({"__typename": "App", "id": "QXBwOjE=", "identifier": None}, "QXBwOjE=")
    assert created_by_kom({"__typename": "App", "id": "QXBwOjk=", "identifier": APP_IDENTIFIER}, "QXBwOjE=")
    assert not created_by_kom({"__typename": "App", "id": "QXBwOjk=", "identifier": "other.app"}, "QXBwOjE=")
    assert not created_by_kom({"__typename": "User", "id": "VXNlcjox"}, "QXBwOjE=")
    assert not created_by_kom(None, "QXBwOjE=")
