"""Fixtures for the Saleor adapter tests."""

from __future__ import annotations

import pytest
from graphql import GraphQLSchema, build_schema

from tests.saleor import shared


@pytest.fixture(scope="session")
def saleor_schema() -> GraphQLSchema:
    """Saleor's schema (~1 MB, about a second to build): once per test session."""
    return build_schema(shared.schema_path().read_text(encoding="utf-8"))
