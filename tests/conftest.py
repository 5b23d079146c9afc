"""Shared fixtures and the hypothesis profiles.

Profiles: ``ci`` (used when CI is set: deterministic, sized to keep CI short), ``dev`` (the
default) and ``thorough`` (HYPOTHESIS_PROFILE=thorough, for a long local run).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# tests/ holds shared helpers (reference.py, nets.py) that test modules import by name
sys.path.insert(0, str(Path(__file__).parent))

# One numba cache per pytest-xdist worker, so workers never write the same cache files.
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker and "NUMBA_CACHE_DIR" not in os.environ:
    os.environ["NUMBA_CACHE_DIR"] = str(Path(__file__).parent.parent / ".numba_cache" / _worker)

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile("thorough", parent=settings.get_profile("dev"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
