"""kernel-check --generate without a kernel: what is drawn, the one-program batch, the minimiser.

The boot itself is replaced by a fake whose "kernel" disagrees with the model exactly when a
sequence holds a chosen pair of ops, so the minimiser has a known answer. The real boot is in
.ci/run (a seeded sample) and in the closing note of the issue that added it.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pmdswap_fuzz.fuzz import kernel_generate as KG
from pmdswap_fuzz.fuzz.export_c import ExportError, check_exportable, export_c, export_c_batch
from pmdswap_fuzz.fuzz.gen import generate
from pmdswap_fuzz.fuzz.kernel_profiles import PROFILES
from pmdswap_fuzz.fuzz.kernelcheck import TraceResult, mismatch_observable
from pmdswap_fuzz.fuzz.trace import parse_trace
from pmdswap_fuzz.models import ops as O

GCC = shutil.which("gcc")


def test_drawn_sequences_are_expressible_seeded_and_independent_of_n():
    for name in ("linux-7.3", "linux-6.1"):
        prof = PROFILES[name]
        seqs = KG.draw(40, 5, 32, prof)
        for _, ops in seqs:
            check_exportable(ops, prof)  # raises if anything inexpressible was kept
            assert 0 < len(ops) <= 32
        assert KG.draw(40, 5, 32, prof) == seqs
        assert KG.draw(3, 5, 32, prof) == seqs[:3]  # sequence i does not depend on N
        assert KG.draw(3, 6, 32, prof) != seqs[:3]
    # on 7.3 what changes is only what the kernel cannot express; the rest is the generator's
    raw = [generate(np.random.default_rng([5, i]), 32) for i in range(40)]
    kept = [ops for _, ops in KG.draw(40, 5, 32, PROFILES["linux-7.3"])]
    assert any(len(k) < len(r) for k, r in zip(kept, raw, strict=False))  # fragment / fail_alloc do occur
    for r, k in zip(raw, kept, strict=False):
        want = [dataclasses.replace(op, fail_alloc=False) if getattr(op, "fail_alloc", False)
                else op for op in r if not isinstance(op, O.Fragment)]
        want = [op for op in want if _fits(op)]
        assert k == want


def _fits(op) -> bool:
    try:
        check_exportable([op], "linux-7.3")
        return True
    except ExportError:
        return False


def test_6_1_draws_no_uffd_move_or_zswap():
    ops = [op for _, s in KG.draw(60, 2, 32, PROFILES["linux-6.1"]) for op in s]
    assert not any(isinstance(op, (O.UffdMove, O.ZswapEnable)) for op in ops)
    ops73 = [op for _, s in KG.draw(60, 2, 32, PROFILES["linux-7.3"]) for op in s]
    assert any(isinstance(op, O.UffdMove) for op in ops73)


def test_chunk_candidates_drop_one_chunk_each():
    ops = [O.Write(0, i, 1, i) for i in range(8)]
    cands = KG._chunk_candidates(ops)
    assert ops[4:] in cands and ops[:4] in cands  # halves
    assert all(len(c) < len(ops) and c for c in cands)
    for i in range(8):  # every single op dropped
        assert ops[:i] + ops[i + 1:] in cands
    assert len(cands) == len({tuple(c) for c in cands})


def test_mismatch_observable_names_what_differed():
    assert mismatch_observable(None) is None
    assert mismatch_observable("op 3: pageout pid=0 start=0 npages=512\n"
                               "pid 0 soft_dirty: page 0: model 1, kernel 0") == "soft_dirty"
    assert mismatch_observable("op 1: fault pid=0 page=3 write=0\nresult: model 0, kernel -14"
                               ) == "result"
    assert mismatch_observable("op 2: x\nvmstat thp_split_pmd: model +1, kernel +0") == "vmstat"
    assert mismatch_observable("final read-back of every page holding an entry:\n"
                               "pid 1 contents: page 4: model 0x1, kernel 0x2") == "contents"
    assert mismatch_observable("the program stopped before op 4 (exit status 139)") == "program"
    assert mismatch_observable("op 0: evict\nmodel raised ModelBug: check_mm") == "model"


@pytest.mark.skipif(GCC is None, reason="gcc is not installed")
def test_batch_program_builds_and_selects_by_index(tmp_path):
    root = Path(__file__).resolve().parents[1]
    traces = [(p.stem, parse_trace(p.read_text())) for p in
              sorted((root / "corpus" / "realkernel").glob("*.trace"))[:5]]
    src = export_c_batch(traces)
    # each trace's op table is the single export's, row for row
    for name, ops in traces:
        one = export_c(ops, name)
        rows = [ln for ln in one.splitlines() if ln.startswith("\t{ OP_")]
        assert "\n".join(rows) in src
    (tmp_path / "b.c").write_text(src)
    subprocess.run([GCC, "-static", "-O2", "-Wall", "-Werror", "-o", str(tmp_path / "b"),
                    str(tmp_path / "b.c"), "-lpthread"], check=True, capture_output=True)
    for argv in ([], ["/dev/null", "/dev/null", "5"], ["/dev/null", "/dev/null", "-1"]):
        r = subprocess.run([str(tmp_path / "b"), *argv], capture_output=True, text=True)
        assert r.returncode == 2 and "usage:" in r.stderr and "(0..4)" in r.stderr
    with pytest.raises(ExportError, match=r"trace 1 \(bad\)"):
        export_c_batch([("ok", traces[0][1]), ("bad", [O.Fragment()])])


class _FakeKernel:
    """boot_and_run / judge stand-ins: the "kernel" disagrees (observable `soft_dirty`) with the
    model on a sequence holding a ClearRefs of pid 0 followed later by a Pageout of pid 0; boots
    are counted."""

    def __init__(self):
        self.boots = 0
        self.candidates = 0

    @staticmethod
    def bad(ops) -> int | None:
        seen = False
        for i, op in enumerate(ops):
            if isinstance(op, O.ClearRefs) and op.pid == 0:
                seen = True
            elif seen and isinstance(op, O.Pageout) and op.pid == 0:
                return i
        return None

    def boot_and_run(self, tree, prof, cmdline, tagged, per_trace_timeout=60, timeout=None,
                     keep_log=None):
        self.boots += 1
        self.candidates += len(tagged)
        text = "K:boot.kernel=7.3-fake\nK:boot.uptime=1.0\n" + "".join(
            f"K:begin={tag}\nK:t0=1\nK:t1=2\n" for tag, _ in tagged) + "K:alldone=1\n"
        return text, 0, 1.0, "tcg"

    def judge(self, path, ops, run, prof):
        i = self.bad(ops)
        if i is None:
            return TraceResult(path, True, len(ops), 1.0)
        return TraceResult(path, False, len(ops), 1.0,
                           f"op {i}: pageout\npid 0 soft_dirty: page 0: model 1, kernel 0", i)


def _fake(monkeypatch, tmp_path):
    fake = _FakeKernel()

    class Tree:
        version, image, sha256, package, note = "7.3-fake", Path("/k"), "ab" * 32, None, ""

        def describe(self):
            return "fake"
    monkeypatch.setattr(KG, "boot_and_run", fake.boot_and_run)
    monkeypatch.setattr(KG, "judge", fake.judge)
    monkeypatch.setattr(KG, "qemu_available", lambda: None)
    monkeypatch.setattr(KG, "resolve_kernel", lambda kernel, prof, log=None: Tree())
    monkeypatch.setattr(KG, "kernel_cmdline", lambda tree: "console=ttyS0")
    return fake


def test_generate_saves_and_minimises_every_disagreement_without_overwriting(
        tmp_path, monkeypatch):
    fake = _fake(monkeypatch, tmp_path)
    out = tmp_path / "found"
    out.mkdir()
    seqs = KG.draw(30, 1, 32, PROFILES["linux-7.3"])
    want = [i for i, (_, ops) in enumerate(seqs) if _FakeKernel.bad(ops) is not None]
    assert want, "seed 1 must draw at least one clear_refs-then-pageout sequence"
    first = KG.generate_check(30, 1, out_dir=out)
    assert [d.index for d in first.disagreements] == want
    assert first.agreed == 30 - len(want) and first.boots == fake.boots >= 2
    for d in first.disagreements:
        assert d.observable == "soft_dirty" and d.signature == "soft_dirty@pageout"
        saved = parse_trace(d.saved.read_text())
        assert saved == d.ops and f"sequence {d.index}" in d.saved.read_text()
    # one signature: its shortest disagreement is minimised, the others are only saved
    mins = [d for d in first.disagreements if d.minimized_saved is not None]
    assert len(mins) == 1 and len(mins[0].ops) == min(len(d.ops) for d in first.disagreements)
    mini = parse_trace(mins[0].minimized_saved.read_text())
    # the known answer: one clear_refs of pid 0, then one pageout of pid 0 (nothing else
    # needed by this fake kernel; mmap etc. are not needed by it either)
    assert [type(op) for op in mini] == [O.ClearRefs, O.Pageout]
    # it got there by converging, not by running out of rounds (the default min_rounds, 8):
    # each round also tries every chunk the last round could drop on its own, dropped together
    assert mins[0].rounds < 8
    text = KG.format_generate(first)
    assert f"{30 - len(want)}/30 sequences agree" in text and "DISAGREE sequence" in text
    # again into the same directory: new files, the old ones untouched
    before = {p: p.read_bytes() for p in out.iterdir()}
    again = KG.generate_check(30, 1, out_dir=out)
    assert {p: p.read_bytes() for p in before} == before
    assert all(d.saved not in before and d.minimized_saved not in before
               for d in again.disagreements)
    assert len(list(out.iterdir())) == 2 * len(before)


def test_generate_minimisation_stops_at_the_budget_and_rounds(tmp_path, monkeypatch):
    fake = _fake(monkeypatch, tmp_path)
    g = KG.generate_check(30, 1, out_dir=tmp_path / "a", time_budget=0.0)
    assert g.budget_hit and g.boots == 1 == fake.boots  # the main boot only
    assert all(d.minimized_saved is None for d in g.disagreements)
    g = KG.generate_check(30, 1, out_dir=tmp_path / "b", min_rounds=1)
    assert g.boots == 2


def test_generate_refuses_bad_arguments_before_booting(tmp_path, monkeypatch):
    fake = _fake(monkeypatch, tmp_path)
    from pmdswap_fuzz.fuzz.kernelcheck import KernelCheckError
    (tmp_path / "file").write_text("x")
    with pytest.raises(KernelCheckError, match="not a directory"):
        KG.generate_check(3, 1, out_dir=tmp_path / "file")
    with pytest.raises(KernelCheckError, match="N >= 1"):
        KG.generate_check(0, 1, out_dir=tmp_path)
    with pytest.raises(KernelCheckError, match="names no kernel package"):
        KG.generate_check(3, 1, profile="mainline-legacy", out_dir=tmp_path)
    assert fake.boots == 0


def test_cli_generate_usage_errors(tmp_path, capsys):
    from pmdswap_fuzz.fuzz.cli import main
    for argv, msg in ((["kernel-check"], "give TRACE"),
                      (["kernel-check", "--generate", "3"], "needs --seed"),
                      (["kernel-check", "--generate", "3", "--seed", "1", "x.trace"], "give no TRACE"),
                      (["kernel-check", "--generate", "3", "--seed", "1", "--model", "pmd"],
                       "legacy model only")):
        assert main(argv) == 2
        assert msg in capsys.readouterr().err
    assert main(["kernel-check", "--generate", "0", "--seed", "1"]) == 2
    assert "'0' is not a positive integer" in capsys.readouterr().err


def test_comparison_ends_the_models_writeback_and_skips_device_io_after_zswap():
    from pmdswap_fuzz.fuzz.kernelcheck import _compare_vmstat, end_all_writeback
    from pmdswap_fuzz.models.legacy import LegacyKernel
    k = LegacyKernel()
    for op in (O.Mmap(0, 0, 512, True), O.Write(0, 0, 512, 7), O.Pageout(0, 0, 512)):
        k.apply(op)
    assert k.mem.writeback.any()  # a disk: the model keeps the write in flight
    end_all_writeback(k)
    assert not k.mem.writeback.any()
    assert (k.swap.data[k.swap.cache >= 0] != 0).all()  # the device holds the contents now
    prev, cur = {"pswpout": 0, "thp_swpout": 0}, {"pswpout": 512, "thp_swpout": 1}
    kv = "pswpout:0,thp_swpout:0"
    assert len(_compare_vmstat(prev, cur, kv)) == 2
    assert _compare_vmstat(prev, cur, kv, zswap=True) == []
    assert _compare_vmstat({"thp_fault_alloc": 0}, {"thp_fault_alloc": 1}, "thp_fault_alloc:0",
                           zswap=True)  # the rest is still compared


def test_a_store_fault_on_a_uffd_wp_page_is_a_read_first_for_the_comparison():
    """The program reads a uffd-wp page before its store (GUP's write fault would wait for the
    trap killably); the comparison gives the model the same read first, so a swapped-out page
    comes in by a read fault (the swap cache is kept: no FAULT_FLAG_WRITE) and then traps."""
    from pmdswap_fuzz.fuzz.kernelcheck import _apply_as_the_program_does, end_all_writeback
    from pmdswap_fuzz.models.legacy import LegacyKernel
    from pmdswap_fuzz.models.observe import PRESENT, observe
    runs = {}
    for how in ("model", "program"):
        k = LegacyKernel()
        for op in (O.Mmap(0, 0, 512, True), O.Write(0, 0, 512, 3), O.UffdRegister(0, 0, 512),
                   O.UffdWp(0, 0, 512, True), O.Pageout(0, 0, 512)):
            k.apply(op)
        end_all_writeback(k)
        f = O.Fault(0, 5, write=True)
        r = k.apply(f) if how == "model" else _apply_as_the_program_does(k, f)
        assert r == O.UFFD_WP_TRAP and observe(k).procs[0].state[5] == PRESENT
        runs[how] = bool((k.swap.cache >= 0).any())
    # a write fault by the exclusive user frees the swap cache (should_try_to_free_swap());
    # the read first keeps it, as the real kernel does for the program's accesses
    assert runs == {"model": False, "program": True}
    k = LegacyKernel()
    k.apply(O.Mmap(0, 0, 4))
    assert _apply_as_the_program_does(k, O.Fault(0, 1, write=True)) == O.OK  # no uffd-wp: as is


def test_the_time_budget_cuts_the_main_boot_and_counts_what_it_left_out(tmp_path, monkeypatch):
    fake = _fake(monkeypatch, tmp_path)
    real = fake.boot_and_run

    def cut_short(tree, prof, cmdline, tagged, per_trace_timeout=60, timeout=None, keep_log=None):
        assert timeout is not None and timeout >= 60  # the budget reaches the boot
        text, _, wall, accel = real(tree, prof, cmdline, tagged[:10], per_trace_timeout)
        return text.replace("K:alldone=1\n", ""), -1, wall, accel  # killed at the timeout
    monkeypatch.setattr(KG, "boot_and_run", cut_short)
    g = KG.generate_check(30, 1, out_dir=tmp_path / "o", time_budget=100.0, minimize=False)
    assert g.not_run == 20 and len(g.report.results) == 10 and g.budget_hit
    assert "20 sequence(s) not run" in KG.format_generate(g)
