"""Read a request body with a hard cap, before anything else looks at it."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request

MAX_WEBHOOK_BODY = 512 * 1024  # Saleor payloads are a few KiB; 512 KiB leaves ample room


async def read_capped(request: Request, limit: int = MAX_WEBHOOK_BODY) -> bytes:
    """The raw body, or 413 as soon as it exceeds ``limit`` (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"Request body larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"Request body larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
