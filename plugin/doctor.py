"""`kom check`: the effective configuration, where each value came from, and what is wrong.

It runs the same checks `kom serve` runs before it starts (``plugin.preflight``) and looks
at the database's schema, but changes nothing: no ``kom.secret`` is generated and no
SQLite file is created.
"""

from __future__ import annotations

from pathlib import Path

from plugin import __version__
from plugin.preflight import EXIT_CONFIG, database_problem, read, with_secret_key
from plugin.settings import Settings, masked_database_url


async def _schema(settings: Settings) -> tuple[str, str | None]:
    """(what the database holds, a problem or None)."""
    from sqlalchemy.engine import make_url

    from plugin.runtime import migrates_itself
    from plugin.store.secrets import SecretBox
    from plugin.store.store import Store

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return "not created yet: the first `kom serve`, `kom worker` or `kom migrate` creates it", None
    store = await Store.open(settings.database_url, SecretBox(None), create=False)
    try:
        status = await store.schema_status()
    finally:
        await store.close()
    if status.up_to_date:
        return f"reachable, {status.describe()}", None
    if migrates_itself(settings.database_url):
        return f"reachable, revision {status.current or 'none'}: KOM migrates it at the next start", None
    return "reachable, schema out of date", f"KOM_DATABASE_URL: {status.describe()}"


async def check() -> int:
    conf = with_secret_key(read(), create=False)
    print(f"KOM {__version__}: configuration from the environment (secrets masked)")
    width = max(len(f"{name}={value}") for name, value in conf.shown.items())
    for name, value in conf.shown.items():
        print(f"  {f'{name}={value}':<{width}}  ({conf.origin[name]})")
    problems = list(conf.problems)
    settings = conf.settings
    if settings is not None:
        shown = masked_database_url(settings.database_url)
        unusable = await database_problem(settings)
        if unusable is not None:
            problems.append(unusable)
        else:
            state, problem = await _schema(settings)
            print(f"database: {shown}: {state}")
            problems += [problem] if problem else []
        print(f"manifest: {settings.public_url}/api/manifest (Saleor: Apps -> Install external app)")
    else:
        print("database: not tried until the settings above are right")
    if not problems:
        print("no problems found")
        return 0
    print(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:")
    for problem in problems:
        print(f"  error: {problem}")
    return EXIT_CONFIG
