"""Shared test configuration.

Hypothesis profiles: ``default`` (what CI runs) and ``deep`` (HYPOTHESIS_PROFILE=deep, many
more examples, for hunting rare cases locally).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("deep", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
