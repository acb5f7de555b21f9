"""Hypothesis settings profiles by name, as plain data (importable without importing Hypothesis).

fuzz/hypo.py registers them; the CLI offers their names. Loaded explicitly by name, never picked by the
environment (Hypothesis would otherwise switch to its own `ci` profile when CI=true). A sequence's
length is `run --length`, as for the other engines.
"""

from __future__ import annotations

_COMMON = dict(deadline=None, print_blob=False, database=None,
               suppress_health_check=("too_slow", "filter_too_much", "data_too_large"))

PROFILES: dict[str, dict] = {
    # quick local runs
    "dev": dict(max_examples=50, **_COMMON),
    # CI: not derandomized; the seed comes from the command line (`--seed`)
    "ci": dict(max_examples=300, derandomize=False, **_COMMON),
    # overnight campaigns
    "long": dict(max_examples=100_000, **_COMMON),
}
PROFILE_NAMES = tuple(PROFILES)
