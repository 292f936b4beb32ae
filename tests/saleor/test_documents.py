"""Every GraphQL document KOM sends or registers is valid against Saleor's schema.

Also checks that nothing used is newer than ``requiredSaleorVersion``'s floor (the schema
marks additions "Added in Saleor 3.NN"), and that deprecated items are used only where
deliberate.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLNamedType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
    validate,
    visit,
)

from adapters.saleor.manifest import TEMPLATE, WEBHOOKS

ROOT = Path(__file__).resolve().parents[2] / "adapters" / "saleor"
DOCUMENTS = sorted(path.relative_to(ROOT).as_posix() for path in ROOT.rglob("*.graphql"))
# Deliberate: `orders(where:)` only exists from 3.22; `filter` works on 3.21 through 3.x.
ALLOWED_DEPRECATED = {"Query.orders(filter:)"}
# "Added in" notes that are wrong for our purpose: OrderGrantedRefund.reason is in Saleor's
# older source without a note (grants exist since 3.13); the 3.22 note came with reasonReference.
PRESENT_BEFORE_NOTE = {"OrderGrantedRefund.reason"}
_ADDED = re.compile(r"Added in Saleor 3\.(\d+)")
_FLOOR = re.search(r">=\s*3\.(\d+)", json.loads(TEMPLATE.read_text())["requiredSaleorVersion"])
assert _FLOOR, "requiredSaleorVersion must start with >=3.NN"
REQUIRED_MINOR = int(_FLOOR.group(1))


def _parse(name: str) -> DocumentNode:
    return parse((ROOT / name).read_text(encoding="utf-8"))


def test_documents_were_found() -> None:
    assert {f"webhooks/{spec.name.replace('-', '_')}.graphql" for spec in WEBHOOKS.values()} <= set(DOCUMENTS)
    assert {
        f"graphql/{name}.graphql" for name in ("app", "order", "transaction_event_report", "recent_orders")
    } <= set(DOCUMENTS)


@pytest.mark.contract
@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_validates(name: str, saleor_schema: GraphQLSchema) -> None:
    errors = validate(saleor_schema, _parse(name))
    assert not errors, "\n".join(str(error) for error in errors)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_is_one_named_operation(name: str) -> None:
    operations = [d for d in _parse(name).definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1 and operations[0].name is not None
    expected = OperationType.SUBSCRIPTION if name.startswith("webhooks/") else None
    if expected:
        assert operations[0].operation is expected
    else:
        assert operations[0].operation is not OperationType.SUBSCRIPTION


@pytest.mark.contract
@pytest.mark.parametrize("name", DOCUMENTS)
def test_document_needs_nothing_newer_than_the_required_version(
    name: str, saleor_schema: GraphQLSchema
) -> None:
    used = _schema_items(saleor_schema, _parse(name))
    too_new = {
        item: minor
        for item, (description, _) in used.items()
        if (minor := _added(description)) > REQUIRED_MINOR and item not in PRESENT_BEFORE_NOTE
    }
    assert not too_new, f"needs Saleor newer than 3.{REQUIRED_MINOR}: {too_new}"
    deprecated = {item for item, (_, reason) in used.items() if reason} - ALLOWED_DEPRECATED
    assert not deprecated, f"uses deprecated schema items: {sorted(deprecated)}"


@pytest.mark.contract
@pytest.mark.parametrize("spec", WEBHOOKS.values(), ids=list(WEBHOOKS))
def test_subscription_selects_what_kom_relies_on(spec: Any, saleor_schema: GraphQLSchema) -> None:
    (operation,) = _parse(f"webhooks/{spec.document.name}").definitions
    assert isinstance(operation, OperationDefinitionNode)
    (event,) = operation.selection_set.selections
    assert isinstance(event, FieldNode) and event.selection_set is not None
    fields = _field_names(event)
    assert "__typename" in fields, "include __typename on event"
    fragments = [s for s in event.selection_set.selections if hasattr(s, "type_condition")]
    assert [f.type_condition.name.value for f in fragments] == [spec.typename]
    selected = _field_names(fragments[0])
    assert {"issuedAt", "version", "recipient"} <= selected
    event_type = saleor_schema.get_type(spec.typename)
    assert event_type is not None and "Event" in {i.name for i in getattr(event_type, "interfaces", [])}


@pytest.mark.contract
def test_version_check_catches_newer_items(saleor_schema: GraphQLSchema) -> None:
    document = parse(
        "query Q { orders(where: { updatedAt: { gte: null } }, first: 1) { edges { node { id "
        "transactions { paymentMethodDetails { name } } } } } }"
    )
    used = _schema_items(saleor_schema, document)
    assert _added(used["Query.orders(where:)"][0]) == 22
    assert _added(used["TransactionItem.paymentMethodDetails"][0]) == 22
    assert used["Query.orders(where:)"][1] is None


def _field_names(node: Any) -> set[str]:
    return {s.name.value for s in node.selection_set.selections if hasattr(s, "name")}


def _added(description: str | None) -> int:
    found = [int(minor) for minor in _ADDED.findall(description or "")]
    return max(found, default=0)


def _schema_items(schema: GraphQLSchema, document: DocumentNode) -> dict[str, tuple[str | None, str | None]]:
    """Every field, argument, input field, enum value and type condition the document
    touches: name -> (description, deprecation reason)."""
    type_info = TypeInfo(schema)
    used: dict[str, tuple[str | None, str | None]] = {}

    def named(type_: GraphQLNamedType | None) -> None:
        if type_ is not None:
            used[type_.name] = (type_.description, None)

    class Collector(Visitor):
        def enter_field(self, node: Any, *_: Any) -> None:
            parent, field = type_info.get_parent_type(), type_info.get_field_def()
            if parent is not None and field is not None:
                used[f"{parent.name}.{node.name.value}"] = (field.description, field.deprecation_reason)
                named(get_named_type(field.type))

        def enter_argument(self, node: Any, *_: Any) -> None:
            parent, field, argument = (
                type_info.get_parent_type(),
                type_info.get_field_def(),
                type_info.get_argument(),
            )
            if parent is not None and field is not None and argument is not None:
                field_name = next((n for n, f in getattr(parent, "fields", {}).items() if f is field), "?")
                used[f"{parent.name}.{field_name}({node.name.value}:)"] = (
                    argument.description,
                    argument.deprecation_reason,
                )

        def enter_object_field(self, node: Any, *_: Any) -> None:
            parent = get_named_type(type_info.get_parent_input_type())
            if isinstance(parent, GraphQLInputObjectType) and node.name.value in parent.fields:
                field = parent.fields[node.name.value]
                used[f"{parent.name}.{node.name.value}"] = (field.description, field.deprecation_reason)

        def enter_enum_value(self, node: Any, *_: Any) -> None:
            enum = get_named_type(type_info.get_input_type())
            if isinstance(enum, GraphQLEnumType) and node.value in enum.values:
                value = enum.values[node.value]
                used[f"{enum.name}.{node.value}"] = (value.description, value.deprecation_reason)

        def enter_inline_fragment(self, *_: Any) -> None:
            named(get_named_type(type_info.get_type()))

    visit(document, TypeInfoVisitor(type_info, Collector()))
    return used
