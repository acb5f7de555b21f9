"""The Hypothesis engine: Hypothesis drives the one generator (fuzz.gen), as the PRNG does for the
random engine and libFuzzer's bytes for atheris: all three make inputs with the same steering
(pageout then evict then fault, fork after swap-out, uffd-wp and soft-dirty orders, remaps).

Each example is one sequence, its decisions drawn from a `st.randoms(use_true_random=True)` PRNG:
Hypothesis picks and records the seed (its database and `hypothesis.seed` replay an example), the
runner runs the ops, they are `note()`d as trace lines, and a finding goes to the one op-level
minimiser and artifact path every engine uses. Drawing each decision from Hypothesis data instead
(so its shrinker would work on decisions) was measured worse, 120 examples against the catalogue
bug clear_soft_dirty_skips_swap_pmd: 54 of the 120 sequences were duplicates and none found the bug,
because Hypothesis' data favours zeros and repeats (its integers: 68% in the lowest tenth of their
range), which bends the generator's weighted picks to their first entries; with its seeded PRNG, 0
duplicates and 2 finds, the random engine 4 on the same count.

Settings profiles (data in fuzz/profiles.py), registered by name here and loaded explicitly by
`load_profile(name)`, so `CI=true` in the environment never silently switches to Hypothesis' own
`ci` profile: `dev`, `ci` (not derandomized; the CLI passes the seed), `long`.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, Verbosity, given, note, settings
from hypothesis import strategies as st

from pmdswap_fuzz.models import ops as O

from .gen import generate_from_choices
from .guard import run_guarded
from .profiles import PROFILES
from .trace import format_op

__all__ = ["PROFILES", "DivergenceFound", "load_profile", "sequence_test",
           "engine_settings"]

for _name, _kw in PROFILES.items():
    settings.register_profile(_name, **{
        **_kw, "suppress_health_check": tuple(HealthCheck[h] for h in _kw["suppress_health_check"])})


def load_profile(name: str) -> settings:
    """Load a registered profile by name (explicitly: the environment never picks it)."""
    if name not in PROFILES:
        raise ValueError(f"unknown Hypothesis profile {name!r} (profiles: {', '.join(PROFILES)})")
    settings.load_profile(name)
    return settings.get_profile(name)


class DivergenceFound(AssertionError):
    """The oracle reported a divergence (or a model raised) at the last op of `ops`."""

    def __init__(self, divergence, ops: list[O.Op]) -> None:
        super().__init__(f"{divergence.signature()} at op {divergence.op_index}: {divergence.detail}")
        self.divergence, self.ops = divergence, ops


def sequence_test(bug: str | None = None, length: int = 32, on_exec=None):
    """A Hypothesis test: one generated sequence per example, run by the runner (both models and
    the oracle), `note()`d as trace lines; a divergence raises DivergenceFound with the ops that
    ran. `on_exec(ops, result)` is the engine's hook (counting, cells, status)."""

    @given(st.randoms(use_true_random=True))
    def test(rnd) -> None:
        ops = generate_from_choices(rnd, length)
        res = run_guarded(ops, bug)
        for i, op in enumerate(ops[:res.executed]):
            note(f"{i}: {format_op(op)}")
        if on_exec is not None:
            on_exec(ops[:res.executed], res)
        if res.divergence is not None:
            raise DivergenceFound(res.divergence, ops[:res.executed])

    return test


def engine_settings(profile: str, max_examples: int | None = None, shrink: bool = False) -> settings:
    """The named profile (loaded explicitly), quiet, optionally with fewer examples per batch.
    Without `shrink` Hypothesis does not shrink (the engine's op-level minimiser is much cheaper
    with models this slow)."""
    base = load_profile(profile)
    kw = {"verbosity": Verbosity.quiet}
    if max_examples is not None:
        kw["max_examples"] = max_examples
    if not shrink:
        kw["phases"] = tuple(p for p in base.phases if p != Phase.shrink)
    return settings(base, **kw)
