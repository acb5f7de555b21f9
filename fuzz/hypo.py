"""The Hypothesis engine: a `RuleBasedStateMachine` whose rules are the ops, named after them.

One rule per op class in `OPS` (`mmap`, `write`, `pageout`, `evict`, ...), generated from the op's
fields, so a shrunk failure prints as a readable program that is also a trace. Every step is
`note()`d as a trace line and checked by the oracle; a divergence raises `DivergenceFound` carrying
the ops so far. Steering (preconditions are pure functions of the machine's shadow state):

  * it starts with a PMD-aligned THP mmap (`initial_mmap`);
  * `pageout` puts the pages it targeted in the `swapped` bundle, and `fault` draws its page from
    it half of the time (so `fault` is enabled once something was paged out), so pageout -> evict
    -> fault chains are common;
  * `pageout` and `split_thp` only after a write, `evict` only after a pageout, `fork` only while a
    pid is free, `exit` only while another process remains, at most 4 `mmap`s; `swapon` only
    without a device, `swapoff` only with one, `fragment` and `zswap_enable` once: the knobs stay
    rare and the steps go to the swap paths.

Settings profiles (data in fuzz/profiles.py), registered by name here and loaded explicitly by
`load_profile(name)`, so `CI=true` in the environment never silently switches to Hypothesis' own
`ci` profile: `dev`, `ci` (not derandomized; the CLI passes the seed), `long`.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, Verbosity, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, initialize, multiple, precondition,
                                 rule)

from models import ops as O

from . import runner
from .guard import exception_divergence
from .oracle import Oracle
from .profiles import PROFILES
from .strategies import field_strategy
from .trace import format_op

__all__ = ["PROFILES", "DivergenceFound", "PmdSwapMachine", "load_profile", "machine_factory",
           "engine_settings"]

P = O.HPAGE_PMD_NR

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


class _Base(RuleBasedStateMachine):
    bug: str | None = None
    on_step = None  # engine hook: called with the machine after every op (counting, status)

    swapped = Bundle("swapped")

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[O.Op] = []
        self.oracle = Oracle(*runner.make_models(self.bug))
        # shadow state the preconditions read (approximate: it does not look inside the models)
        self.pids = {0}
        self.mmaps = 0
        self.written = False
        self.paged_out = False  # since the last evict
        self.swap_on = True
        self.fragmented = False
        self.zswap = False

    def _step(self, op: O.Op) -> None:
        i = len(self.ops)
        self.ops.append(op)
        note(f"{i}: {format_op(op)}")
        try:
            div = self.oracle.step(i, op)
        except Exception as e:  # noqa: BLE001 - a model crash is a finding
            div = exception_divergence(i, op, e)
        if self.on_step is not None:
            self.on_step(self)
        if div is not None:
            raise DivergenceFound(div, list(self.ops))
        self._shadow(op)

    def _shadow(self, op: O.Op) -> None:
        if isinstance(op, O.Mmap):
            self.mmaps += 1
        elif isinstance(op, O.Write):
            self.written = True
        elif isinstance(op, O.Pageout):
            self.paged_out = True
        elif isinstance(op, O.Evict):
            self.paged_out = False
        elif isinstance(op, O.Fork) and op.pid in self.pids and not op.fail_alloc:
            free = [p for p in range(O.MAX_PROCS) if p not in self.pids]
            if free:
                self.pids.add(free[0])
        elif isinstance(op, O.Exit):
            self.pids.discard(op.pid)
        elif isinstance(op, O.Swapoff):
            self.swap_on = False
        elif isinstance(op, O.Swapon):
            self.swap_on, self.fragmented = True, False
        elif isinstance(op, O.Fragment):
            self.fragmented = True
        elif isinstance(op, O.ZswapEnable):
            self.zswap = True

    @initialize(start=st.sampled_from(tuple(r * P for r in range(O.NR_REGIONS - 1))),
                regions=st.integers(1, 2))
    def initial_mmap(self, start: int, regions: int) -> None:
        self._step(O.Mmap(0, start, regions * P, hugepage=True))


# ---- rules, one per op, generated from OPS -------------------------------------------------------
_PRECONDITIONS = {
    O.Mmap: lambda self: self.mmaps < 4,
    O.Pageout: lambda self: self.written,
    O.Evict: lambda self: self.paged_out,
    O.Fault: lambda self: bool(self.bundle("swapped")),  # its page may come from the bundle
    O.Fork: lambda self: len(self.pids) < O.MAX_PROCS,
    O.Exit: lambda self: len(self.pids) > 1,
    O.SplitThp: lambda self: self.written,
    O.Swapon: lambda self: not self.swap_on,
    O.Swapoff: lambda self: self.swap_on,
    O.ZswapEnable: lambda self: not self.zswap,
    O.Fragment: lambda self: self.swap_on and not self.fragmented,
}


# The swap-path ops are always eligible; every other op only on every NOISE_EVERY-th step, which
# weights the swap paths NOISE_EVERY:1 (Hypothesis has no rule weights; this is a precondition).
CORE_OPS = (O.Mmap, O.Munmap, O.Write, O.Fault, O.Pageout, O.Evict, O.Fork)
NOISE_EVERY = 3


def _noise_ok(self) -> bool:
    return len(self.ops) % NOISE_EVERY == 0


def _page_or_swapped(f, steered) -> st.SearchStrategy:
    return st.one_of(_Base.swapped, field_strategy(f, steered))


def _make_rule(cls: type[O.Op]):
    strats = {}
    for f in O.op_fields(cls):
        kind, _ = O.field_kind(f)
        if kind == "page" and cls is O.Fault:
            strats[f.name] = _page_or_swapped(f, True)
        else:
            strats[f.name] = field_strategy(f, steered=True)

    if cls is O.Pageout:
        def step(self, **kw):
            op = cls(**kw)
            self._step(op)
            end = min(op.start + op.npages, O.VA_PAGES)
            return multiple(*sorted({op.start, (op.start + end) // 2, end - 1}))
        deco = rule(target=_Base.swapped, **strats)
    else:
        def step(self, **kw):
            self._step(cls(**kw))
        deco = rule(**strats)
    step.__name__ = step.__qualname__ = cls.name
    step.__doc__ = f"Rule for op `{cls.name}` ({cls.__name__})."
    fn = deco(step)
    own = _PRECONDITIONS.get(cls)
    if cls in CORE_OPS:
        pre = own
    elif own is None:
        pre = _noise_ok
    else:
        def pre(self, own=own):
            return _noise_ok(self) and own(self)
    if pre is not None:
        fn = precondition(pre)(fn)
    return fn


PmdSwapMachine = type("PmdSwapMachine", (_Base,),
                      {cls.name: _make_rule(cls) for cls in O.OPS} | {"__module__": __name__})
PmdSwapMachine.__doc__ = "Both kernels and the oracle, one rule per op (see the module docstring)."


def machine_factory(bug: str | None = None, on_step=None):
    """A subclass of PmdSwapMachine with the bug to inject and the engine's per-step hook."""
    return type("PmdSwapMachine", (PmdSwapMachine,),
                {"bug": bug, "on_step": staticmethod(on_step) if on_step else None,
                 "__module__": __name__})


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
