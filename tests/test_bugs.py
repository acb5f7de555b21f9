"""The bug catalogue (models/bugs.py) against the differential oracle: every bug is found, shrinks small,
and its minimised trace is clean on the correct model.

Per bug, with a fixed seed set and a fixed execution budget (ops executed, not wall-clock):
  1. search: `fuzz.gen.generate(seed, GEN_LENGTH)` for seed in SEEDS, each run through
     `run_guarded(ops, bug=name)` (run_trace plus model exceptions as findings) until one diverges
     while the same prefix does not diverge without the bug; at most BUDGET_OPS ops in all. Bugs
     the generator does not reach within that budget get a hand-written directed trace (DIRECTED),
     each a few ops long, with a comment on what the generator lacks;
  2. minimise the diverging prefix with `fuzz.minimize.minimize` (at most MINIMIZE_RUNS runs);
  3. the minimised trace must give the same signature with the bug and NO divergence with bug=None.
Documented blind spots (models.bugs.BLIND_SPOTS) get a different test: a directed trace where the
bug's mistake happens (after some op the buggy model's page tables / swap cache differ from the
correct model's) while the oracle reports nothing. If that test fails because the oracle now sees the bug,
move the bug out of BLIND_SPOTS into the searched or DIRECTED set.

Until fuzz/runner.py builds its PMD model with `models.bugs.make_pmd_kernel`, the tests monkeypatch
`fuzz.runner.make_models`. Run with `-s` to see the per-bug executions-to-find and minimised lengths.
"""

from __future__ import annotations

import numpy as np
import pytest

import pmdswap_fuzz.fuzz.runner as runner
from pmdswap_fuzz.fuzz.gen import generate
from pmdswap_fuzz.fuzz.guard import run_guarded
from pmdswap_fuzz.fuzz.minimize import minimize
from pmdswap_fuzz.fuzz.trace import format_trace
from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.bugs import BLIND_SPOTS, BUGS, COPIED_FROM, copied_source_hash, make_pmd_kernel
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel

GEN_LENGTH = 24  # ops per generated sequence
SEEDS = range(100)  # the fixed seed set, tried in order
BUDGET_OPS = 2400  # the fixed execution budget of the search: ops executed over all seeds
MINIMIZE_RUNS = 150  # the minimiser's budget (trace runs)
MAX_MINIMISED = 8  # a minimised trace longer than this means the minimiser or the bug went wrong

N = O.HPAGE_PMD_NR


# ---- directed traces -------------------------------------------------------------------------------
# pid 0 maps region 0 (pages 0..511, PMD aligned, MADV_HUGEPAGE) and fills it; region 2 (page 1024)
# is the mremap / UFFDIO_MOVE target.
def _mmap(start=0, n=N):
    return O.Mmap(0, start, n)


def _fill(value=1):
    return O.Write(0, 0, N, value)


_PAGEOUT = O.Pageout(0, 0, N)
_REGISTER = O.UffdRegister(0, 0, N)
_WP = O.UffdWp(0, 0, N, True)
# a swap PMD over a mixed swap cache: slots 0..99 cached by small folios, 100..511 not
_MIXED = [_mmap(), _fill(), _PAGEOUT, O.Fork(0), O.Evict(), O.Fault(1, 0), O.SplitThp(),
          O.Pageout(1, 0, 100)]

# Bugs the generator does not reach within BUDGET_OPS (measured: none of SEEDS at GEN_LENGTH 24, and
# most not within 120 seeds at length 40). The reasons are the generator's steering, noted per trace.
DIRECTED: dict[str, list[O.Op]] = {
    # uffd register+wp *before* the pageout, then fork: the generator's uffd move comes at random
    # points and rarely precedes a pageout of the same region followed by a fork
    "fork_child_keeps_uffd_wp": [_mmap(), _fill(), _REGISTER, _WP, _PAGEOUT, O.Fork(0)],
    # swapoff is about 1 % of the generator's moves
    "fork_child_not_on_mmlist": [_mmap(), _fill(), _PAGEOUT, O.Fork(0), O.Swapoff()],
    # partial munmap/DONTNEED ranges are drawn from mappings, not from paged-out regions
    "partial_zap_frees_whole_entry": [_mmap(), _fill(), _PAGEOUT, O.Dontneed(0, 0, 100)],
    "change_huge_pmd_ignores_uffd_wp": [_mmap(), _fill(), _PAGEOUT, _REGISTER, _WP],
    # clear_refs, a write, pageout, then a partial op on the swapped region
    "split_drops_soft_dirty": [_mmap(), _fill(), O.ClearRefs(0), _fill(2), _PAGEOUT,
                               O.Dontneed(0, 0, 100)],
    "split_drops_uffd_wp": [_mmap(), _fill(), _REGISTER, _WP, _PAGEOUT, O.UffdWp(0, 0, 1, False)],
    # partial UFFDIO_MOVE of an evicted swap PMD into a registered region
    "split_drops_exclusive": [_mmap(0, 3 * N), _fill(), _PAGEOUT, O.Evict(), O.UffdRegister(0, 2 * N, N),
                              O.UffdMove(0, 0, 2 * N, 100)],
    "unuse_pmd_maps_writable": [_mmap(), _fill(), _PAGEOUT, O.Fork(0), O.Swapoff()],
    "unuse_pmd_drops_uffd_wp": [_mmap(), _fill(), _REGISTER, _WP, _PAGEOUT, O.Swapoff()],
    "unuse_pmd_wrong_subpage_order": [_mmap(), _fill(), _PAGEOUT, O.Evict(), O.Swapoff()],
    # an aligned mremap of a registered range (legacy must use move_ptes) after clear_refs
    # clear_refs after the pageout: before it, legacy's split of the dirty PMD made its swap PTEs
    # soft-dirty (D9); the uffd-wp registration makes legacy's mremap use move_ptes()
    "move_huge_pmd_forgets_soft_dirty": [_mmap(), _fill(), _PAGEOUT, O.ClearRefs(0), _REGISTER,
                                         O.MremapMove(0, 0, N, 2 * N)],
    "move_huge_pmd_keeps_uffd_wp": [_mmap(), _fill(), _REGISTER, _WP, _PAGEOUT,
                                    O.MremapMove(0, 0, N, 2 * N)],
    # fork, evict, and a whole-PMD UFFDIO_MOVE of the parent's (shared) entry
    "uffd_move_non_exclusive": [_mmap(0, 3 * N), _fill(), _PAGEOUT, O.Evict(), O.Fork(0),
                                O.UffdRegister(0, 2 * N, N), O.UffdMove(0, 0, 2 * N, N)],
    # caught by the invariant writable_implies_soft_dirty: clear_refs, then a read fault swaps in
    "swapin_no_soft_dirty_wp": [_mmap(), _fill(), _PAGEOUT, O.ClearRefs(0), O.Fault(0, 3)],
    # caught by the two-sided soft-dirty rule on regions nothing wrote since clear_refs
    "clear_soft_dirty_skips_swap_pmd": [_mmap(), _fill(), _PAGEOUT, O.ClearRefs(0), O.Fault(0, 3)],
    # docs/models.md finding F1, nine ops in a fixed order
    "madv_free_pmd_swapcache_stale": [_mmap(), _fill(1), _PAGEOUT, O.Evict(), O.Fault(0, 0), _fill(2),
                                      O.Free(0, 0, N), _PAGEOUT, O.Fault(0, 0)],
    # MADV_FREE right after the pageout: the generator's free lands on swapped regions rarely
    # since the mixed_cache_cycle and willneed moves took share from it
    "madv_free_leaves_swap_entry": [_mmap(), _fill(), _PAGEOUT, O.Free(0, 0, N)],
    # the mixed cache (v3 rule): fork, evict, the child reads the THP back, split_thp splits the
    # cached folio, the child pages part of it out again; the generator's mixed_cache_cycle does
    # this but is one move in ~60, and each cycle's consumer is one of six
    "swapin_mixed_cache_reads_device": _MIXED + [O.Fault(0, 0)],
    "mincore_swap_pmd_wrong_offset": _MIXED + [O.Mincore(0, 50, N - 50)],
    # MADV_WILLNEED over an evicted swap PMD, then a look (fault or mincore): the generator's
    # willneed is drawn over mappings and rarely follows a pageout and an evict of the same region
    "willneed_pmd_folio_not_read": [_mmap(), _fill(), _PAGEOUT, O.Evict(), O.Willneed(0, 0, N),
                                    O.Fault(0, 3)],
    "willneed_skips_swap_pmd": [_mmap(), _fill(), _PAGEOUT, O.Evict(), O.Willneed(0, 0, N),
                                O.Mincore(0, 0, N)],
    # mincore of a swap PMD: the generator's zswap_cycle took share from the mincore moves, and
    # within SEEDS a mincore now lands on an evicted entry (or a mixed cache) too late
    "mincore_swap_pmd_resident": [_mmap(), _fill(), _PAGEOUT, O.Evict(), O.Mincore(0, 0, N)],
    "mincore_swap_pmd_base_slot": _MIXED + [O.Mincore(0, 0, N)],
    # swapoff is one reader in four of zswap_cycle, itself one move in ~90
    "unuse_ignores_zswap": [_mmap(), _fill(), O.ZswapEnable(), _PAGEOUT, O.Swapoff()],
    # the cold move took share from free and from mixed_cache_cycle: within SEEDS a partial
    # MADV_FREE no longer lands on a swap PMD, nor a swapoff on a mixed cache
    "madv_free_partial_frees_whole_entry": [_mmap(), _fill(), _PAGEOUT, O.Free(0, 0, 100)],
    "unuse_pmd_ignores_mixed_cache": _MIXED + [O.Swapoff()],
    # the rwp_cycle move took share from willneed and mixed_cache_cycle: within SEEDS a whole
    # MADV_WILLNEED no longer lands on a swap PMD over a mixed cache
    "willneed_ignores_mixed_cache": _MIXED + [O.Willneed(0, 0, N)],
}

# For each blind spot: a trace on which the bug's mistake happens (see the class docstrings).
BLIND_TRACES: dict[str, list[O.Op]] = {}

SEARCHED = sorted(set(BUGS) - set(DIRECTED) - BLIND_SPOTS)
STATS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _catalogue_models(monkeypatch):
    """Wire the runner to the catalogue (a no-op once fuzz/runner.py uses make_pmd_kernel)."""
    monkeypatch.setattr(runner, "make_models",
                        lambda bug=None: (LegacyKernel(), make_pmd_kernel(bug)))


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nbug catalogue: executions to find, minimised length")
    for name in sorted(STATS):
        print(f"  {name:36} {STATS[name]}")


def _search(name: str):
    """First generated sequence (seed order) that diverges with the bug and not without it."""
    spent = traces = 0
    for seed in SEEDS:
        if spent >= BUDGET_OPS:
            break
        ops = generate(seed, GEN_LENGTH)[:BUDGET_OPS - spent]
        res = run_guarded(ops, name)
        spent += res.executed
        traces += 1
        if res.divergence is not None and run_guarded(ops[:res.executed], None).divergence is None:
            return seed, ops[:res.executed], res, traces, spent
    return None, None, None, traces, spent


def _check_minimised(name: str, ops: list[O.Op], sig: str) -> list[O.Op]:
    small = minimize(ops, sig, bug=name, replays=1, max_runs=MINIMIZE_RUNS)
    again = run_guarded(small, name)
    assert again.divergence is not None and again.divergence.signature() == sig, \
        f"{name}: the minimised trace does not reproduce {sig}:\n{format_trace(small)}"
    clean = run_guarded(small, None)
    assert clean.divergence is None, \
        (f"{name}: the minimised trace diverges without the bug:\n{clean.divergence.describe()}\n"
         f"{format_trace(small)}")
    assert len(small) <= MAX_MINIMISED, f"{name}: minimised to {len(small)} ops:\n{format_trace(small)}"
    return small


@pytest.mark.parametrize("name", SEARCHED)
def test_generator_finds_bug(name):
    seed, ops, res, traces, spent = _search(name)
    assert res is not None, (f"{name}: no divergence in {traces} generated sequences "
                             f"({spent} ops, budget {BUDGET_OPS}); the generator no longer reaches "
                             f"it: give it a DIRECTED trace or steer fuzz/gen.py")
    sig = res.divergence.signature()
    small = _check_minimised(name, ops, sig)
    STATS[name] = (f"seed {seed}: {traces} sequences, {spent} ops; {len(ops)} -> {len(small)} ops; "
                   f"{sig}")


@pytest.mark.parametrize("name", sorted(DIRECTED))
def test_directed_trace_finds_bug(name):
    ops = DIRECTED[name]
    res = run_guarded(ops, name)
    assert res.divergence is not None, f"{name}: the directed trace does not diverge"
    assert run_guarded(ops[:res.executed], None).divergence is None, \
        f"{name}: the directed trace diverges without the bug too"
    sig = res.divergence.signature()
    small = _check_minimised(name, ops[:res.executed], sig)
    STATS[name] = f"directed: {res.executed} ops; -> {len(small)} ops; {sig}"


def _state(k) -> tuple:
    """Page tables and swap cache of a model, as bytes: where a mistake would leave its mark."""
    out = []
    for pid, mm in sorted(k.mms.items()):
        out.append(pid)
        for name in ("pmd_kind", "pmd_write", "pmd_sd", "pmd_uw", "pmd_swp_excl", "pte_kind",
                     "pte_write", "pte_sd", "pte_uw", "pte_swp_off", "pte_swp_excl"):
            out.append(getattr(mm, name).tobytes())
    if k.swap is not None:
        out += [k.swap.count.tobytes(), (k.swap.cache >= 0).tobytes()]
        out.append(k.mem.head[np.maximum(k.swap.cache, 0)].tobytes())
    return tuple(out)


@pytest.mark.parametrize("name", sorted(BLIND_SPOTS))
def test_blind_spot_is_live_but_unseen(name):
    ops = BLIND_TRACES[name]
    buggy, good = make_pmd_kernel(name), make_pmd_kernel(None)
    differed = False
    for op in ops:
        buggy.apply(op)
        good.apply(op)
        differed |= _state(buggy) != _state(good)
    assert differed, f"{name}: the mistake never happens on its trace"
    res = run_guarded(ops, name)
    assert res.divergence is None, (f"{name} is no longer a blind spot (the oracle sees "
                                    f"{res.divergence.signature()}): move it out of BLIND_SPOTS")
    STATS[name] = "blind spot: the mistake happens, the oracle sees nothing"


def test_catalogue_is_complete_and_well_formed():
    assert len(BUGS) >= 22
    assert set(DIRECTED) <= set(BUGS) and BLIND_SPOTS <= set(BUGS) and set(BLIND_TRACES) == BLIND_SPOTS
    assert not set(DIRECTED) & BLIND_SPOTS
    assert type(make_pmd_kernel(None)) is PmdSwapKernel
    with pytest.raises(KeyError, match="valid names"):
        make_pmd_kernel("no_such_bug")
    for name, cls in BUGS.items():
        assert issubclass(cls, PmdSwapKernel) and cls.__doc__, name
        methods = [m for m, v in vars(cls).items() if callable(v) and not m.startswith("__")]
        assert len(methods) == 1, f"{name} overrides {methods}, not exactly one method"
        assert type(make_pmd_kernel(name)) is cls


def test_copied_bodies_are_current():
    """models/bugs.py copies some correct bodies; a change in models/pmd_swap.py (or mm.py) must be
    carried into the copy, then COPIED_FROM updated."""
    stale = [m for m, h in COPIED_FROM.items() if copied_source_hash(getattr(PmdSwapKernel, m)) != h]
    assert not stale, f"re-sync the copies of {stale} in models/bugs.py, then update COPIED_FROM"
