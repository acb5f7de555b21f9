"""Tests of the differential oracle (fuzz/oracle.py) against kernel-behaviour.md section 8 and 3.2.

Three groups:
  1. rule by rule: two observations of one lockstep state of both models, perturbed by hand on one
     side (a content, a uffd-wp bit, a soft-dirty bit, a residency, a slot, a count, a VMA), fed to
     the rule method directly. Each must-reject case asserts the rule that fires and what it names;
     each must-accept case asserts that no rule fires, on a perturbation section 8 says is not compared
     or is tolerated;
  2. `Divergence`: signature() and describe() carry the rule, op, pid, pages and both values;
  3. end to end through `Oracle.step` with real op lists on both models, one per TOLERATED row: the
     difference really occurs (checked on the observations), the oracle accepts it, and the bookkeeping
     (taint, lockstep, detached) is what the row's effect says. Each also checks that the difference
     would be rejected without the tolerance, so the test cannot pass on two identical observations.

Layout of the base state (`BASE_OPS`): pid 0 maps region 0 [0, 512) MADV_HUGEPAGE and writes value 1,
then pages it out (the PMD model holds one PMD swap entry, legacy 512 PTE swap entries, slots 512+i);
it maps [1024, 1088) without MADV_HUGEPAGE, writes value 2, pages out [1024, 1040) (PTE swap entries),
drops [1080, 1088) (none), forks pid 1, clears its soft-dirty bits and writes value 3 to [1040, 1044),
the only pages in pid 0's written-pages shadow.
"""

from __future__ import annotations

import copy
import errno
import numpy as np
import pytest

from pmdswap_fuzz.fuzz.oracle import TOLERATED, TOLERATED_BY_EVENT, Divergence, Oracle
from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, UNMAPPED, observe
from pmdswap_fuzz.models.pmd_swap import PmdSwapKernel

N = O.HPAGE_PMD_NR
EBUSY = -errno.EBUSY

SWP = 5  # region 0: swapped (PMD swap entry in the PMD model), value 1
SWP_SLOT = N + SWP  # its slot: the first free cluster starts at 512
PTE_SWP = 1030  # region 2: PTE swap entry, value 2
PRES = 1050  # region 2: present, value 2, not written since clear_refs
WRITTEN = 1041  # region 2: present, written (value 3) since clear_refs: in the shadow
HOLE = 1082  # region 2: none (MADV_DONTNEED)
OUTSIDE = 1500  # region 2: outside every VMA

BASE_OPS = [
    O.Mmap(0, 0, N), O.Write(0, 0, N, 1),
    O.Mmap(0, 1024, 64, hugepage=False), O.Write(0, 1024, 64, 2),
    O.Pageout(0, 0, N), O.Pageout(0, 1024, 16), O.Dontneed(0, 1080, 8),
    O.Fork(0), O.ClearRefs(0), O.Write(0, 1040, 4, 3),
]
OP_INDEX = len(BASE_OPS)  # op index used for the hand-made checks
OP = O.Fault(0, SWP)  # the op those checks are attributed to


def val(value: int, page: int) -> int:
    return (value << 16) | page


def run_ok(ops) -> Oracle:
    """Step both models through `ops`; no op may diverge."""
    oracle = Oracle(LegacyKernel(), PmdSwapKernel())
    for i, op in enumerate(ops):
        div = oracle.step(i, op)
        assert div is None, div.describe()
    return oracle


def rules(orc: Oracle, ol, op_, rl: int = O.OK, rp: int = O.OK) -> Divergence | None:
    """Rules 1-5 in the order `step` applies them (rule 6/7 look at the kernels, not observations)."""
    return (orc._contents(OP_INDEX, OP, ol, op_) or orc._expected_contents(OP_INDEX, OP, ol, op_)
            or orc._layout(OP_INDEX, OP, ol, op_, rl, rp) or orc._uffd_wp(OP_INDEX, OP, ol, op_)
            or orc._soft_dirty(OP_INDEX, OP, ol, op_) or orc._residency(OP_INDEX, OP, ol, op_))


@pytest.fixture
def base():
    """(oracle, legacy observation, PMD observation) of the base state, in lockstep."""
    orc = run_ok(BASE_OPS)
    ol, op_ = observe(orc.legacy), observe(orc.pmd)
    assert orc.lockstep and not orc.tainted and not orc.detached
    # the layout the cases below rely on
    a = ol.procs[0]
    assert a.state[SWP] == SWAPPED and a.swp_off[SWP] == SWP_SLOT
    assert a.state[PTE_SWP] == SWAPPED and a.state[PRES] == PRESENT and a.state[HOLE] == NONE
    assert a.state[OUTSIDE] == UNMAPPED
    assert a.contents[PRES] == val(2, PRES) and a.contents[WRITTEN] == val(3, WRITTEN)
    assert orc.shadow[0][WRITTEN] and not orc.shadow[0][PRES]
    assert not a.soft_dirty[PRES] and not op_.procs[0].soft_dirty[PRES]
    assert orc.pmd.mms[0].pmd_kind[0] != orc.legacy.mms[0].pmd_kind[0]  # swap PMD vs PTE table
    return orc, ol, op_


# ================================================================================================
# 1. rule by rule
# ================================================================================================
def test_unperturbed_base_state_is_accepted(base):
    orc, ol, op_ = base
    assert rules(orc, ol, op_) is None
    assert orc._invariants(OP_INDEX, OP) is None


# ---- rule 1: contents ---------------------------------------------------------------------------
@pytest.mark.parametrize("page", [SWP, PTE_SWP, PRES], ids=["swapped", "pte-swapped", "present"])
def test_contents_differ_rejected(base, page):
    orc, ol, op_ = base
    op_.procs[1].contents[page] ^= 1
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents"
    assert d.pid == 1 and d.pages == (page,)
    assert d.legacy == hex(int(ol.procs[1].contents[page]))
    assert d.pmd == hex(int(ol.procs[1].contents[page]) ^ 1)


def test_contents_of_none_page_differ_rejected(base):
    """A none page reads zero; reading anything else there is a content divergence."""
    orc, ol, op_ = base
    op_.procs[0].contents[HOLE] = 7
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents" and d.pages == (HOLE,)


def test_expected_contents_both_wrong_rejected(base):
    """Both models agree, on the wrong value: shared-code data loss (rule 1, the shadow)."""
    orc, ol, op_ = base
    for obs in (ol, op_):
        obs.procs[0].contents[PRES] = 0x1234
    assert orc._contents(OP_INDEX, OP, ol, op_) is None
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents-expected"
    assert d.pid == 0 and d.pages == (PRES,)
    assert "0x1234" in d.detail and hex(val(2, PRES)) in d.detail
    assert d.legacy == d.pmd == "0x1234"


def test_expected_contents_both_zero_where_written_rejected(base):
    """Data loss to zeros in both models (a page dropped instead of swapped) is caught too."""
    orc, ol, op_ = base
    for obs in (ol, op_):
        obs.procs[1].contents[SWP] = 0
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents-expected" and d.pid == 1 and d.pages == (SWP,)


def test_expected_shadow_disagreeing_rejected(base):
    """The same check from the other side: the models are right, the expectation says otherwise."""
    orc, ol, op_ = base
    orc.expect[0][PTE_SWP] ^= 0x10000
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents-expected" and d.pages == (PTE_SWP,)


def test_many_differing_pages_reported_first_eight(base):
    orc, ol, op_ = base
    pages = np.arange(1024, 1044)
    op_.procs[0].contents[pages] ^= 1
    d = orc._contents(OP_INDEX, OP, ol, op_)
    assert d is not None and d.pages == tuple(range(1024, 1032))


# ---- rule 2: layout and results -----------------------------------------------------------------
def test_vmas_differ_rejected(base):
    orc, ol, op_ = base
    b = op_.procs[0]
    (s, e, _prot, huge, uw), rest = b.vmas[1], b.vmas[2:]
    b.vmas = b.vmas[:1] + ((s, e, O.PROT_READ, huge, uw),) + rest
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "layout" and d.pid == 0 and "VMAs differ" in d.detail
    assert d.legacy == str(ol.procs[0].vmas) and d.pmd == str(b.vmas)


def test_vma_uffd_registration_differs_rejected(base):
    orc, ol, op_ = base
    b = op_.procs[1]
    s, e, prot, huge, _ = b.vmas[0]
    b.vmas = ((s, e, prot, huge, True),) + b.vmas[1:]
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "layout" and d.pid == 1


def test_results_differ_rejected(base):
    orc, ol, op_ = base
    d = rules(orc, ol, op_, rl=O.OK, rp=-errno.ENOMEM)
    assert d is not None and d.rule == "results" and d.pid == OP.pid
    assert (d.legacy, d.pmd) == ("0", "-ENOMEM")


def test_results_signal_differs_rejected(base):
    orc, ol, op_ = base
    d = rules(orc, ol, op_, rl=O.SIGBUS, rp=O.OK)
    assert d is not None and d.rule == "results" and (d.legacy, d.pmd) == ("SIGBUS", "0")


def test_process_sets_differ_rejected(base):
    orc, ol, op_ = base
    del op_.procs[1]
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "layout" and "process sets differ" in d.detail
    assert d.pid is None and (d.legacy, d.pmd) == ("[0, 1]", "[0]")


def test_swap_device_in_one_model_only_rejected(base):
    orc, ol, op_ = base
    orc.lockstep = False  # even after lockstep the device itself must be in both
    op_.swap_count = op_.swap_free = op_.swap_cached = None
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "layout" and "swap device" in d.detail


# ---- rule 3: uffd-wp ----------------------------------------------------------------------------
@pytest.mark.parametrize("page", [SWP, PTE_SWP, PRES], ids=["swapped", "pte-swapped", "present"])
def test_uffd_wp_differs_where_both_have_entry_rejected(base, page):
    orc, ol, op_ = base
    op_.procs[0].uffd_wp[page] = True
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "uffd-wp" and d.pid == 0 and d.pages == (page,)
    assert (d.legacy, d.pmd) == ("0", "1")


def test_uffd_wp_differs_on_none_or_unmapped_page_accepted(base):
    """uffd-wp is compared only where both hold an entry: a none PTE carries no bit (1.10)."""
    orc, ol, op_ = base
    op_.procs[0].uffd_wp[HOLE] = True
    ol.procs[1].uffd_wp[OUTSIDE] = True
    assert rules(orc, ol, op_) is None


# ---- rule 4: soft-dirty -------------------------------------------------------------------------
@pytest.mark.parametrize("side", ["legacy", "pmd"])
def test_written_page_not_soft_dirty_rejected(base, side):
    orc, ol, op_ = base
    (ol if side == "legacy" else op_).procs[0].soft_dirty[WRITTEN] = False
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "soft-dirty" and d.pid == 0 and d.pages[0] == WRITTEN
    assert f"not soft-dirty in {side}" in d.detail


def test_legacy_soft_dirty_pmd_not_rejected(base):
    orc, ol, op_ = base
    ol.procs[0].soft_dirty[PRES] = True
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "soft-dirty" and d.pages == (PRES,)
    assert "legacy but not in the PMD model" in d.detail


@pytest.mark.parametrize("pages", [[PRES], list(range(2 * N, 2 * N + 64))],
                         ids=["one-page", "written-region-D5"])
def test_pmd_soft_dirty_superset_accepted(base, pages):
    """soft_dirty_superset (D5/D7): in a region written since clear_refs (region 2 holds WRITTEN)
    the PMD model may mark more pages soft-dirty than legacy."""
    orc, ol, op_ = base
    op_.procs[0].soft_dirty[pages] = True
    assert not ol.procs[0].soft_dirty[pages].all()
    assert rules(orc, ol, op_) is None


def test_pmd_soft_dirty_superset_rejected_where_nothing_wrote(base):
    """Region 0 was neither written nor moved since clear_refs: soft-dirty must be equal there
    (a PMD model that forgets to clear a swap PMD's soft-dirty bit shows up here)."""
    orc, ol, op_ = base
    assert not ol.procs[0].soft_dirty[SWP]
    op_.procs[0].soft_dirty[0:N] = True
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "soft-dirty" and d.pages[0] == 0
    assert "nothing wrote or moved" in d.detail


def test_soft_dirty_not_compared_on_none_pages(base):
    orc, ol, op_ = base
    ol.procs[0].soft_dirty[HOLE] = True  # a none page shows VM_SOFTDIRTY only; PMD side clean
    op_.procs[0].soft_dirty[HOLE] = False
    assert rules(orc, ol, op_) is None


# ---- rule 5: residency, slots, counts -----------------------------------------------------------
@pytest.mark.parametrize("page,new", [(SWP, PRESENT), (PRES, NONE), (HOLE, PRESENT)],
                         ids=["swapped-vs-present", "present-vs-none", "none-vs-present"])
def test_residency_differs_untainted_rejected(base, page, new):
    orc, ol, op_ = base
    orc.lockstep = False
    orc.tainted.add((0, 1))  # another region of the same pid does not excuse this one
    orc.tainted.add((1, page // N))  # nor the same region of another pid
    op_.procs[0].state[page] = new
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "residency" and d.pid == 0 and d.pages == (page,)
    names = {NONE: "none", PRESENT: "present", SWAPPED: "swapped"}
    assert (d.legacy, d.pmd) == (names[int(ol.procs[0].state[page])], names[new])


def test_residency_differs_tainted_accepted(base):
    """pmd_swapin (D1): PMD present where legacy still swapped, in a tainted region."""
    orc, ol, op_ = base
    orc.lockstep = False
    orc.tainted.add((0, 0))
    b = op_.procs[0]
    b.state[0:N] = PRESENT
    b.swp_off[0:N] = -1
    assert rules(orc, ol, op_) is None


def test_swap_offset_differs_in_lockstep_rejected(base):
    orc, ol, op_ = base
    op_.procs[1].swp_off[SWP] += 1
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "swap-slots" and d.pid == 1 and d.pages == (SWP,)
    assert (d.legacy, d.pmd) == (str(SWP_SLOT), str(SWP_SLOT + 1))


def test_swap_offset_differs_after_lockstep_accepted(base):
    orc, ol, op_ = base
    orc.lockstep = False
    op_.procs[1].swp_off[SWP] += 1
    op_.procs[0].swp_off[PTE_SWP] = 4000
    assert rules(orc, ol, op_) is None


@pytest.mark.parametrize("field", ["rss_anon", "vm_swap"])
def test_rss_differs_in_lockstep_rejected(base, field):
    orc, ol, op_ = base
    setattr(op_.procs[0], field, getattr(op_.procs[0], field) + 1)
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "rss" and d.pid == 0


def test_rss_differs_after_lockstep_accepted(base):
    orc, ol, op_ = base
    orc.lockstep = False
    op_.procs[0].rss_anon += N
    op_.procs[0].vm_swap -= N
    assert rules(orc, ol, op_) is None


@pytest.mark.parametrize("col", [2, 3], ids=["Rss", "Swap"])
def test_smaps_rss_swap_differ_in_lockstep_rejected(base, col):
    orc, ol, op_ = base
    b = op_.procs[0]
    row = list(b.smaps[1])
    row[col] += 1
    b.smaps = (b.smaps[0], tuple(row)) + b.smaps[2:]
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "smaps" and d.pid == 0


def test_smaps_anon_huge_pages_differ_accepted(base):
    """AnonHugePages is mapping level, not compared (D2, D4), even in lockstep."""
    orc, ol, op_ = base
    b = op_.procs[0]
    b.smaps = tuple(s[:4] + (s[4] + N,) for s in b.smaps)
    assert rules(orc, ol, op_) is None


def test_slot_count_differs_in_lockstep_rejected(base):
    orc, ol, op_ = base
    op_.swap_count[SWP_SLOT] += 1
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "swap-counts" and str(SWP_SLOT) in d.detail
    assert (d.legacy, d.pmd) == ("2", "3")


def test_free_slot_set_differs_in_lockstep_rejected(base):
    orc, ol, op_ = base
    free = int(np.flatnonzero(ol.swap_free)[-1])
    op_.swap_free[free] = False
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "swap-counts" and f"slot {free}" in d.detail
    assert (d.legacy, d.pmd) == ("free", "used")


def test_slot_counts_differ_after_lockstep_accepted(base):
    orc, ol, op_ = base
    orc.lockstep = False
    op_.swap_count[SWP_SLOT] += 1
    op_.swap_free[int(np.flatnonzero(ol.swap_free)[-1])] = False
    assert rules(orc, ol, op_) is None


def test_swap_cache_contents_differ_accepted(base):
    """Swap-cache contents are not compared (section 8, last paragraph)."""
    orc, ol, op_ = base
    op_.swap_cached[:] = False
    assert rules(orc, ol, op_) is None


# ---- not compared: exclusive, writable, mapping level -------------------------------------------
def test_exclusive_writable_mapping_level_differ_accepted(base):
    orc, ol, op_ = base
    for pid in (0, 1):
        b = op_.procs[pid]
        b.exclusive[:] = ~b.exclusive
        b.writable[:] = ~b.writable
        b.pmd_level[:] = ~b.pmd_level
    assert rules(orc, ol, op_) is None


# ---- madv_free_after_swapin ---------------------------------------------------------------------
def _freed_in(orc, page, tainted=True):
    orc.lockstep = False
    if tainted:
        orc.tainted.add((0, page // N))
    orc.freed.setdefault(0, np.zeros(O.VA_PAGES, bool))[page] = True
    orc.freed_value.setdefault(0, np.zeros(O.VA_PAGES, np.uint32))[page] = val(2, page)


@pytest.mark.parametrize("zero_side", ["legacy", "pmd"])
def test_madv_free_zero_vs_freed_value_tainted_accepted(base, zero_side):
    orc, ol, op_ = base
    _freed_in(orc, PRES)
    (ol if zero_side == "legacy" else op_).procs[0].contents[PRES] = 0
    assert rules(orc, ol, op_) is None


def test_madv_free_third_value_rejected(base):
    orc, ol, op_ = base
    _freed_in(orc, PRES)
    ol.procs[0].contents[PRES] = 0
    op_.procs[0].contents[PRES] = val(9, PRES)
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents" and d.pages == (PRES,)
    assert (d.legacy, d.pmd) == ("0x0", hex(val(9, PRES)))


def test_madv_free_third_value_in_both_rejected(base):
    orc, ol, op_ = base
    _freed_in(orc, PRES)
    ol.procs[0].contents[PRES] = op_.procs[0].contents[PRES] = val(9, PRES)
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents-expected" and d.pages == (PRES,)


def test_madv_free_zero_vs_freed_value_untainted_rejected(base):
    """The tolerance is for tainted regions only: in lockstep both models must agree."""
    orc, ol, op_ = base
    _freed_in(orc, PRES, tainted=False)
    ol.procs[0].contents[PRES] = 0
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents" and d.pages == (PRES,)


def test_madv_free_zero_vs_value_of_page_not_freed_rejected(base):
    orc, ol, op_ = base
    _freed_in(orc, PRES)
    ol.procs[0].contents[PRES + 1] = 0  # same tainted region, but this page was not freed
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents" and d.pages == (PRES + 1,)


# ---- detached processes (uffd_move_whole, entry_vs_none_cascade) --------------------------------
def test_detached_pid_pmd_side_differences_accepted(base):
    orc, ol, op_ = base
    orc.detached.add(0)
    b = op_.procs[0]
    b.contents[SWP] ^= 1
    b.uffd_wp[PRES] = True
    b.state[PRES] = NONE
    b.swp_off[PTE_SWP] += 1
    b.vmas = b.vmas[:1]
    ol.procs[0].soft_dirty[PRES] = True
    assert rules(orc, ol, op_) is None


def test_detached_pid_other_pid_still_compared(base):
    orc, ol, op_ = base
    orc.detached.add(0)
    op_.procs[1].contents[SWP] ^= 1
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents" and d.pid == 1


def test_detached_pid_legacy_still_checked_against_expectation(base):
    """Detaching stops the cross-model comparison, not legacy's check against the shadow."""
    orc, ol, op_ = base
    orc.detached.add(0)
    ol.procs[0].contents[PRES] = 0x1234
    d = rules(orc, ol, op_)
    assert d is not None and d.rule == "contents-expected" and d.pid == 0


# ---- rule 7: invariants -------------------------------------------------------------------------
def test_invariant_failure_in_pmd_model_rejected(base):
    orc, _, _ = base
    orc.pmd.swap.count[SWP_SLOT] += 1
    d = orc._invariants(OP_INDEX, OP)
    assert d is not None and d.rule == "invariant:swap_count_matches_entries"
    assert d.detail.startswith("pmd: ") and str(SWP_SLOT) in d.detail
    assert d.legacy == "holds" and str(SWP_SLOT) in d.pmd


def test_invariant_failure_in_legacy_model_rejected(base):
    orc, _, _ = base
    orc.legacy.mms[1].anonpages += 1
    d = orc._invariants(OP_INDEX, OP)
    assert d is not None and d.rule == "invariant:rss_counters_match"
    assert d.detail.startswith("legacy: ") and "pid 1" in d.detail and d.pmd == "holds"


def test_invariant_failure_found_by_step(base):
    """`step` runs the invariants after the cross-model rules: a count broken in both models
    identically passes rules 1-5 and is still reported."""
    orc, _, _ = base
    for k in (orc.legacy, orc.pmd):
        k.swap.count[SWP_SLOT] += 1
    d = orc.step(OP_INDEX, O.Fault(1, PRES))
    assert d is not None and d.rule == "invariant:swap_count_matches_entries"


# ================================================================================================
# 2. Divergence
# ================================================================================================
@pytest.mark.parametrize("page,repr_kind", [(SWP, "PMD swap entry"), (PTE_SWP, "PTE swap entry"),
                                            (PRES, "PTE-mapped")])
def test_divergence_signature_and_describe(base, page, repr_kind):
    orc, ol, op_ = base
    op = O.Write(1, page, 1, 4)
    want_l = int(ol.procs[1].contents[page])
    op_.procs[1].contents[page] = want_l ^ 0x10000
    d = orc._contents(17, op, ol, op_)
    assert d is not None and d.op_index == 17 and d.op is op
    assert d.repr_kind == repr_kind
    assert d.signature() == f"contents:write:{repr_kind}"
    text = d.describe()
    first, leg, pmd = text.split("\n")
    assert first == f"op #17 write: rule contents pid 1 pages {page}: page contents differ"
    assert leg == f"  legacy: {hex(want_l)}"
    assert pmd == f"  pmd:    {hex(want_l ^ 0x10000)}"


def test_divergence_without_pid_or_pages(base):
    orc, ol, op_ = base
    op_.swap_count[SWP_SLOT] += 1
    d = orc._residency(3, O.Evict(), ol, op_)
    assert d is not None and d.pid is None and d.pages == ()
    assert d.signature() == "swap-counts:evict:-"
    assert d.describe().startswith(f"op #3 evict: rule swap-counts: count of slot {SWP_SLOT}")
    assert " pid " not in d.describe() and " pages " not in d.describe()


# ================================================================================================
# 3. end to end, one per TOLERATED row
# ================================================================================================
THP = [O.Mmap(0, 0, N), O.Write(0, 0, N, 1)]
THP_OUT = THP + [O.Pageout(0, 0, N)]


def _obs(orc, pid=0):
    return observe(orc.legacy).procs[pid], observe(orc.pmd).procs[pid]


def _events(orc, ops):
    """Step through `ops` (no divergence allowed); return every PMD event seen."""
    seen = []
    for op in ops:
        i = getattr(orc, "_n", 0)
        orc._n = i + 1
        d = orc.step(i, op)
        assert d is None, d.describe()
        seen += [e[0] for e in orc.pmd.events]
    return seen


def new_oracle() -> Oracle:
    return Oracle(LegacyKernel(), PmdSwapKernel())


def test_tolerated_pmd_swapin():
    """pageout, memory.reclaim, read fault: legacy maps 1 page, PMD maps 512 (D1)."""
    orc = new_oracle()
    assert "pmd_swapin" in _events(orc, THP_OUT + [O.Evict(), O.Fault(0, 3)])
    a, b = _obs(orc)
    assert (a.state[:N] == PRESENT).sum() == 1 and (b.state[:N] == PRESENT).all()
    assert (0, 0) in orc.tainted and not orc.lockstep
    assert (a.contents[:N] == b.contents[:N]).all()  # contents still compared and equal
    # without the taint the residency rule would fire
    orc.tainted.clear()
    d = orc._residency(5, O.Fault(0, 3), observe(orc.legacy), observe(orc.pmd))
    assert d is not None and d.rule == "residency"


def test_tolerated_pmd_swapin_taints_slot_sharers():
    """A fork shares the 512 slots; the parent's whole swap-in taints the child's region too, and
    the child's own later faults and pageout stay accepted."""
    orc = new_oracle()
    assert _events(orc, THP_OUT + [O.Fork(0), O.Evict()]) == []
    assert _events(orc, [O.Fault(0, 3)]) == ["pmd_swapin"]
    assert orc.tainted == {(0, 0), (1, 0)}
    _events(orc, [O.Fault(1, 7), O.Pageout(1, 0, N), O.Fault(1, 9), O.Write(1, 0, N, 5)])
    a, b = _obs(orc, 1)
    assert (a.contents[:N] == b.contents[:N]).all()


def test_pmd_zapped_by_dontneed_is_not_a_difference():
    """Linux 7.3 frees the emptied PTE table after a whole-2 MiB MADV_DONTNEED (CONFIG_PT_RECLAIM),
    so legacy's PMD is none like the PMD model's: nothing tainted, lockstep goes on, and both fault
    a fresh THP."""
    orc = new_oracle()
    assert _events(orc, THP_OUT + [O.Dontneed(0, 0, N)]) == ["pmd_zapped"]
    assert not orc.tainted and orc.lockstep
    assert _events(orc, [O.Fault(0, 3, write=True)]) == []
    a, b = _obs(orc)
    assert (a.state[:N] == PRESENT).all() and (b.state[:N] == PRESENT).all()


def test_tolerated_pmd_zapped():
    """pageout, MADV_FREE of the whole entry, fault: a fresh THP in PMD, a 4 KiB page in legacy
    (madvise_free_pte_range() keeps the emptied table)."""
    orc = new_oracle()
    assert _events(orc, THP_OUT + [O.Free(0, 0, N)]) == ["pmd_zapped"]
    assert (0, 0) in orc.tainted and not orc.lockstep
    _events(orc, [O.Fault(0, 3, write=True)])
    a, b = _obs(orc)
    assert (a.state[:N] != b.state[:N]).any()
    assert a.state[3] == b.state[3] == PRESENT and (a.contents[:N] == 0).all()
    orc.tainted.clear()
    d = orc._residency(5, O.Fault(0, 3), observe(orc.legacy), observe(orc.pmd))
    assert d is not None and d.rule == "residency"


def test_tolerated_uffd_move_whole():
    """UFFDIO_MOVE of a whole PMD swap entry whose THP is still cached: legacy -EBUSY, PMD 0 (D8)."""
    ops = THP_OUT + [O.Mmap(0, 1024, N), O.UffdRegister(0, 1024, N)]
    orc = new_oracle()
    _events(orc, ops)
    op = O.UffdMove(0, 0, 1024, N)
    # the results really differ
    lk, pk = copy.deepcopy(orc.legacy), copy.deepcopy(orc.pmd)
    assert (lk.apply(op), pk.apply(op)) == (EBUSY, O.OK)
    assert _events(orc, [op]) == ["uffd_move_src_none", "uffd_move_whole"]
    assert 0 in orc.detached
    # the detached process stays detached; a later fork's child inherits it
    _events(orc, [O.Fault(0, 1024 + 3), O.Fork(0)])
    assert {0, 1} <= orc.detached
    # and exit forgets it
    _events(orc, [O.Exit(1)])
    assert 1 not in orc.detached


def test_uffd_move_other_results_differ_still_rejected():
    """Only -EBUSY vs 0 with the event is tolerated; the same op results differing otherwise are not."""
    orc = new_oracle()
    _events(orc, THP_OUT + [O.Mmap(0, 1024, N), O.UffdRegister(0, 1024, N)])
    ol, op_ = observe(orc.legacy), observe(orc.pmd)
    d = orc._layout(9, O.UffdMove(0, 0, 1024, N), ol, op_, -errno.ENOENT, O.OK)
    assert d is not None and d.rule == "results"


def test_tolerated_pmd_unuse():
    """swapoff of an evicted entry maps a THP (PMD) vs 512 small folios (legacy); the next pageout
    takes one cluster in PMD and 512 order-0 slots in legacy (D4)."""
    orc = new_oracle()
    assert "pmd_unuse" in _events(orc, THP_OUT + [O.Evict(), O.Swapoff()])
    assert (0, 0) in orc.tainted and not orc.lockstep
    _events(orc, [O.Swapon(), O.Pageout(0, 0, N)])
    a, b = _obs(orc)
    both = (a.state == SWAPPED) & (b.state == SWAPPED)
    assert both.any() and (a.swp_off[both] != b.swp_off[both]).any()
    orc.lockstep = True
    orc.tainted.clear()
    d = orc._residency(9, O.Pageout(0, 0, N), observe(orc.legacy), observe(orc.pmd))
    assert d is not None and d.rule in ("residency", "swap-slots")


def test_tolerated_thp_swpout_fallback_one_side():
    """Out of lockstep, on a fragmented device: the PMD model's whole swap-in freed a cluster that
    legacy still holds 511 slots of, so the next THP swap-out takes that cluster in the PMD model
    and falls back to a split in legacy, whose zero-filled pages go to the zero page."""
    ops = THP_OUT[:1] + [O.Mmap(0, N, N), O.Write(0, N, 1, 1), O.Pageout(0, N, N), O.Fragment(),
                         O.Evict(), O.Fault(0, N, write=True), O.Fault(0, 0)]
    orc = new_oracle()
    _events(orc, ops)
    assert not orc.lockstep and (0, 0) not in orc.tainted
    before = (orc.legacy.vmstat["thp_swpout_fallback"], orc.pmd.vmstat["thp_swpout_fallback"])
    _events(orc, [O.Pageout(0, 0, N)])
    assert orc.legacy.vmstat["thp_swpout_fallback"] == before[0] + 1
    assert orc.pmd.vmstat["thp_swpout_fallback"] == before[1]
    assert (0, 0) in orc.tainted
    a, b = _obs(orc)
    assert (a.state[:N] == PRESENT).all() and (b.state[:N] == SWAPPED).all()
    assert (a.contents[:N] == b.contents[:N]).all()  # contents are still compared there
    orc.tainted.discard((0, 0))
    d = orc._residency(9, O.Pageout(0, 0, N), observe(orc.legacy), observe(orc.pmd))
    assert d is not None and d.rule == "residency"


def test_tolerated_madv_free_after_swapin():
    """After a whole swap-in, MADV_FREE: legacy drops its swap entries (zeros), PMD keeps lazyfree data."""
    orc = new_oracle()
    _events(orc, THP_OUT + [O.Evict(), O.Fault(0, 3), O.Free(0, 0, N)])
    a, b = _obs(orc)
    differ = np.flatnonzero(a.contents[:N] != b.contents[:N])
    assert differ.size
    p = int(differ[0])
    assert {int(a.contents[p]), int(b.contents[p])} == {0, val(1, p)}
    # freeing again keeps the first freed value (legacy's zero must not become the reference)
    _events(orc, [O.Free(0, 0, N)])
    assert orc.freed_value[0][p] == val(1, p)
    # a write settles it
    _events(orc, [O.Write(0, p, 1, 6)])
    a, b = _obs(orc)
    assert a.contents[p] == b.contents[p] == val(6, p)
    assert not orc.freed[0][p]


def test_madv_free_after_swapin_store_fault_keeps_either_value():
    """A store fault (`*p = *p`) on a page MADV_FREE'd after a whole swap-in stores what each model
    read: zero in legacy (the swap entry was dropped), the old data in the PMD model (lazyfree THP).
    Both are what the kernels do (1.6, D1), so the difference must stay accepted after the store.
    Suspected oracle bug: `_follow` clears `freed` on the store and `_follow_expect` takes legacy's
    zero as the expectation, so rules contents and contents-expected fire."""
    orc = new_oracle()
    _events(orc, THP_OUT + [O.Evict(), O.Fault(0, 3), O.Free(0, 0, N)])
    a, b = _obs(orc)
    assert (a.contents[5], b.contents[5]) == (0, val(1, 5))
    op = O.Fault(0, 5, write=True)
    d = orc.step(7, op)
    a, b = _obs(orc)
    assert (a.contents[5], b.contents[5]) == (0, val(1, 5))  # each kept what it read
    assert d is None, d.describe()


def test_tolerated_entry_vs_none_cascade():
    """After a whole swap-in and MADV_FREE, uffd-wp on the range: PMD keeps it on its present entry,
    legacy has none PTEs, so a write traps in the PMD model only (1.10, D1)."""
    orc = new_oracle()
    _events(orc, [O.Mmap(0, 0, N), O.Write(0, 0, N, 1), O.UffdRegister(0, 0, N), O.Pageout(0, 0, N),
                  O.Evict(), O.Fault(0, 3), O.Free(0, 0, N), O.UffdWp(0, 0, N)])
    a, b = _obs(orc)
    assert a.state[5] == NONE and b.state[5] == PRESENT and b.uffd_wp[5]
    lk, pk = copy.deepcopy(orc.legacy), copy.deepcopy(orc.pmd)
    op = O.Write(0, 5, 1, 2)
    assert (lk.apply(op), pk.apply(op)) == (O.OK, O.UFFD_WP_TRAP)
    _events(orc, [op])
    assert 0 in orc.detached


def test_entry_vs_none_untainted_results_differ_rejected():
    """The cascade tolerance needs a tainted range; the same result difference elsewhere is a bug."""
    orc = new_oracle()
    _events(orc, [O.Mmap(0, 0, N), O.Write(0, 0, N, 1)])
    ol, op_ = observe(orc.legacy), observe(orc.pmd)
    op_.procs[0].state[5] = NONE
    orc._note_diverged(ol, op_)  # untainted: a residency difference is a bug, nothing is noted
    assert not orc._entry_vs_none(O.Write(0, 5, 1, 2))
    orc.tainted.add((0, 0))
    orc._note_diverged(ol, op_)
    assert orc._entry_vs_none(O.Write(0, 5, 1, 2))
    assert not orc._entry_vs_none(O.Write(0, 6, 1, 2))  # same residency in both: not risky


@pytest.mark.parametrize("ops", [
    THP_OUT + [O.Evict(), O.ClearRefs(0), O.Fault(0, 3, write=True)],
    THP_OUT + [O.ClearRefs(0), O.MremapMove(0, 0, N, 1024)],
], ids=["D5-write-through-PMD", "D7-aligned-mremap-of-swap-PMD"])
def test_tolerated_soft_dirty_superset(ops):
    orc = new_oracle()
    _events(orc, ops)
    a, b = _obs(orc)
    both = (a.state >= PRESENT) & (b.state >= PRESENT)
    assert (both & b.soft_dirty & ~a.soft_dirty).any()  # strictly more in the PMD model
    assert not (both & a.soft_dirty & ~b.soft_dirty).any()


def test_tolerated_pmd_readahead():
    """MADV_WILLNEED reads one PMD-order folio where legacy reads 512 small ones; after a VMA
    split and a write, legacy's written slot is free and the PMD model's is still cached: the
    swap-count rule would fire, the row ends lockstep instead (a campaign found it)."""
    orc = new_oracle()
    ops = [O.Mmap(0, 0, N), O.Fault(0, 0, write=False), O.Pageout(0, 0, N), O.Willneed(0, 0, N)]
    assert "pmd_readahead" in _events(orc, ops)
    assert not orc.lockstep
    assert _events(orc, [O.UffdRegister(0, 0, 1), O.Write(0, 0, 1, 1)]) is not None
    ol, op_ = observe(orc.legacy), observe(orc.pmd)
    assert (ol.swap_free != op_.swap_free).any()  # the difference the row accepts
    orc.lockstep = True
    d = orc._residency(6, O.Write(0, 0, 1, 1), ol, op_)
    assert d is not None and d.rule == "swap-counts"


def test_tolerated_pte_batch_dirty_sd():
    """After a whole-2 MiB swap-in legacy maps the THP with PTEs, the PMD model with a PMD; a
    UFFDIO_WRITEPROTECT after clear_refs gives legacy's batch the dirty page's soft-dirty on all
    512 (modify_prot_start_ptes()), not the PMD: accepted one-sided, the other side still checked."""
    orc = new_oracle()
    ops = [O.Mmap(0, 0, 3 * N), O.Write(0, 2 * N, 1, 1), O.Pageout(0, 2 * N, N),
           O.Fault(0, 2 * N, write=True), O.ClearRefs(0), O.UffdRegister(0, 2 * N, N),
           O.UffdWp(0, 2 * N, N, enable=True)]
    _events(orc, ops)
    a, b = _obs(orc)
    sl = slice(2 * N, 3 * N)
    assert a.soft_dirty[sl].all() and not b.soft_dirty[sl].any()
    assert orc.sd_legacy_more[0][sl].all() and not orc.sd_legacy_more[0][:2 * N].any()
    # without the row the difference is a divergence
    ol, op_ = observe(orc.legacy), observe(orc.pmd)
    more = orc.sd_legacy_more.pop(0)
    d = orc._soft_dirty(7, ops[-1], ol, op_)
    assert d is not None and d.rule == "soft-dirty"
    # with it, the written-since-clear_refs lower bound still holds in legacy
    orc.sd_legacy_more[0] = more
    ol.procs[0].soft_dirty[2 * N] = False  # as if legacy had lost a write's soft-dirty
    orc.shadow.setdefault(0, np.zeros(O.VA_PAGES, bool))[2 * N] = True
    d = orc._soft_dirty(7, ops[-1], ol, op_)
    assert d is not None and "written since clear_refs" in d.detail


def test_tolerated_table_rows_complete():
    assert len({t.event for t in TOLERATED}) == len(TOLERATED)
    assert set(TOLERATED_BY_EVENT) == {t.event for t in TOLERATED}
    for t in TOLERATED:
        assert t.event and t.event.isidentifier(), t
        assert t.reason.strip() and t.effect.strip() and t.section.strip(), t
        assert any(ch.isdigit() for ch in t.section), t  # names a section of kernel-behaviour.md


def test_every_event_the_pmd_model_reports_has_a_row():
    """Every event emitted in the end-to-end scenarios above is tolerated by name."""
    seen = set()
    for ops in (THP_OUT + [O.Evict(), O.Fault(0, 3)], THP_OUT + [O.Dontneed(0, 0, N)],
                THP_OUT + [O.Evict(), O.Swapoff()],
                THP_OUT + [O.Mmap(0, 1024, N), O.UffdRegister(0, 1024, N), O.UffdMove(0, 0, 1024, N)]):
        seen |= set(_events(new_oracle(), ops))
    assert seen == {"pmd_swapin", "pmd_zapped", "pmd_unuse", "uffd_move_src_none", "uffd_move_whole"}
    assert seen <= set(TOLERATED_BY_EVENT)
