"""The real Saleor schema (``<shared>/saleor/schema.graphql``), built once per process.

The shared dir lives outside the repo: ``$KOM_SHARED_DIR`` or ``<repo>/../shared``. Tests
that need it call ``require_schema()``: without the file they are skipped with the reason,
except under ``CI=true``, where a missing schema is a failure (CI must run them).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from graphql import GraphQLSchema, build_schema

__all__ = ["captures_dir", "load_schema", "require_schema", "schema_path", "shared_dir"]


def shared_dir() -> Path:
    env = os.environ.get("KOM_SHARED_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[4] / "shared"


def schema_path() -> Path:
    return shared_dir() / "saleor" / "schema.graphql"


def captures_dir() -> Path:
    """What a real Saleor 3.23.28 sent (bodies, headers, subscription documents)."""
    return shared_dir() / "saleor" / "captures-3.23.28"


def require_schema() -> GraphQLSchema:
    """The schema, or skip the calling test (fail under ``CI=true``) when it is missing."""
    path = schema_path()
    if not path.is_file():
        import pytest  # only here: `kom demo` uses the fake without the test tools installed

        reason = f"Saleor schema not found at {path} (set KOM_SHARED_DIR to the shared dir)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}; CI must run the fake-Saleor tests.")
        pytest.skip(reason)
    return load_schema()


def load_schema() -> GraphQLSchema:
    return _build(str(schema_path()))


@functools.cache
def _build(path: str) -> GraphQLSchema:
    # ~0.7 s for the 1 MB SDL: build once, share between fakes (resolvers live in root
    # values and contexts, never on the schema, so sharing is safe).
    return build_schema(Path(path).read_text(encoding="utf-8"))
