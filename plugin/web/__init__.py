"""The Starlette app: routes, lifespan (one engine, one HTTP client, the worker), health."""
