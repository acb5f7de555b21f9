"""Real-kernel conformance: the C exporter (always) and the qemu check of corpus/realkernel (when possible).

The export tests need only gcc. The qemu test needs qemu-system-x86_64 and busybox-static
(tools/install-realkernel-deps.sh) and Debian's cloud kernel (fetched with apt-get download on first
use, cached in ~/.cache/pmdswap-fuzz/kernel/); without them it is skipped with the reason.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from fuzz.export_c import ExportError, check_exportable, export_c
from fuzz.kernel_profiles import DEFAULT_PROFILE, PROFILES
from fuzz.trace import parse_trace
from models import ops as O

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted(glob.glob(str(ROOT / "corpus" / "realkernel" / "*.trace")))
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is not installed")

# one op of every kind, with fields that make sense in one trace
EVERY_OP = [
    O.Mmap(0, 0, 1024, True), O.UffdRegister(0, 0, 1024), O.Write(0, 0, 512, 3),
    O.Fault(0, 600, False), O.UffdWp(0, 0, 16, True), O.Pageout(0, 0, 512), O.Evict(),
    O.Fork(0), O.ClearRefs(1), O.Mprotect(1, 0, 64, O.PROT_READ), O.Dontneed(1, 64, 8),
    O.Free(1, 72, 8), O.MremapMove(1, 512, 256, 1536), O.MremapShrink(0, 512, 512, 100),
    O.Munmap(1, 0, 4), O.Exit(1), O.UffdWp(0, 0, 16, False), O.UffdMove(0, 600, 1200, 1),
    O.SplitThp(), O.Swapoff(), O.Swapon(True), O.ZswapEnable(),
]


def _compile_all(sources: dict[str, str]) -> dict[str, str]:
    """gcc -static -Wall -Werror every source in parallel; {name: compiler output} of failures."""
    bad = {}
    with tempfile.TemporaryDirectory(prefix="pmdswap-test-export-") as d:
        procs = []
        for name, src in sources.items():
            c = Path(d) / f"{name}.c"
            c.write_text(src)
            procs.append((name, subprocess.Popen(
                [GCC, "-static", "-O2", "-Wall", "-Werror", "-o", str(Path(d) / name), str(c),
                 "-lpthread"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))
        for name, p in procs:
            out = p.communicate()[0].decode()
            if p.returncode:
                bad[name] = out[-2000:]
    return bad


def test_corpus_is_big_enough_and_expressible_on_6_1():
    assert len(CORPUS) >= 20
    for path in CORPUS:
        check_exportable(parse_trace(Path(path).read_text(), path), DEFAULT_PROFILE)


@needs_gcc
def test_exported_corpus_compiles_static_werror():
    sources = {Path(p).stem: export_c(parse_trace(Path(p).read_text(), p), Path(p).stem)
               for p in CORPUS}
    assert _compile_all(sources) == {}


@needs_gcc
def test_every_op_kind_exports_and_compiles_for_a_mainline_target():
    src = export_c(EVERY_OP, "every-op", "mainline-pmd")
    for i, op in enumerate(EVERY_OP):
        assert f"/* {i:3d}: {op.name} " in src  # every op is in the table, none dropped
    assert "UFFDIO_REGISTER_MODE_MISSING" in src  # a trace with UFFDIO_MOVE registers MISSING too
    assert _compile_all({"every": src}) == {}


def test_export_is_readable_and_deterministic():
    ops = parse_trace(Path(CORPUS[0]).read_text())
    a, b = export_c(ops, "x"), export_c(ops, "x")
    assert a == b
    assert a.startswith("// SPDX-License-Identifier: GPL-2.0\n/*\n * x: a pmdswap-fuzz trace")
    assert "Build: gcc -static" in a and "MAP_FIXED_NOREPLACE" in a and "MADV_PAGEOUT" in a


@pytest.mark.parametrize("op, why", [
    (O.Fragment(), "userspace cannot place slots"),
    (O.ZswapEnable(), "no zswap"),
    (O.UffdMove(0, 0, 512, 1), "UFFDIO_MOVE does not exist"),
    (O.Write(0, 0, 1, 1, fail_alloc=True), "fail_alloc=1"),
    (O.Fault(0, 0, False, fail_alloc=True), "fail_alloc=1"),
    (O.Fork(0, fail_alloc=True), "fail_alloc=1"),
    (O.Swapoff(fail_alloc=True), "fail_alloc=1"),
    (O.Mmap(0, 2000, 100), "beyond the 2048-page window"),
])
def test_unexpressible_ops_raise_export_error_with_index(op, why):
    ops = [O.Mmap(0, 0, 512, True), O.Write(0, 0, 512, 1), op, O.Pageout(0, 0, 512)]
    with pytest.raises(ExportError) as e:
        export_c(ops, "bad")
    assert e.value.index == 2 and e.value.op == op
    assert "op 2 (" in str(e.value) and why in str(e.value)


def test_mainline_profile_expresses_what_6_1_cannot():
    ops = [O.Mmap(0, 0, 1024, True), O.UffdRegister(0, 0, 1024), O.UffdMove(0, 0, 512, 1),
           O.ZswapEnable()]
    with pytest.raises(ExportError):
        export_c(ops, "m")
    export_c(ops, "m", "mainline-legacy")
    with pytest.raises(ExportError, match="userspace cannot place slots"):
        export_c([O.Fragment()], "m", "mainline-pmd")  # never expressible


def test_profile_lists_each_difference_once_with_source():
    for prof in PROFILES.values():
        keys = [d.key for d in prof.differences]
        assert len(keys) == len(set(keys))
        for d in prof.differences:
            assert d.source and d.what and d.handling in ("model", "observe", "export", "none")


def test_kernel_check_rejects_a_bad_trace_before_anything_runs(tmp_path):
    from fuzz.kernelcheck import KernelCheckError, kernel_check
    t = tmp_path / "frag.trace"
    t.write_text("pmdswap-trace 1\nmmap pid=0 start=0 npages=512 hugepage=1\nfragment\n")
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*")))
    with pytest.raises(KernelCheckError, match=r"frag.trace: op 1 \(fragment\): cannot be expressed"):
        kernel_check([str(t)])
    with pytest.raises(KernelCheckError, match="not a text trace|missing version header"):
        kernel_check([str(tmp_path / "frag.trace"), __file__])
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*"))) == before


# ---------------------------------------------------------------------------------------------
# on a real kernel under qemu
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def debian_kernel():
    from fuzz.kernelcheck import KernelCheckError, fetch_debian_kernel, qemu_available
    missing = qemu_available()
    if missing:
        pytest.skip(f"real-kernel check skipped: {missing}")
    try:
        return fetch_debian_kernel()
    except KernelCheckError as e:
        pytest.skip(f"real-kernel check skipped: cannot get Debian's cloud kernel: {e}")


@pytest.fixture(scope="module")
def corpus_report(debian_kernel):
    from fuzz.kernelcheck import format_report, kernel_check
    rep = kernel_check(CORPUS, kernel=str(debian_kernel), model="legacy")
    print("\n" + format_report(rep))
    return rep


def test_corpus_agrees_with_legacy_model_on_linux_6_1(corpus_report):
    from fuzz.kernelcheck import format_report
    rep = corpus_report
    assert rep.kernel_version.startswith("6.1.")
    assert rep.profile == "linux-6.1" and rep.model == "legacy"
    assert len(rep.results) == len(CORPUS)
    assert rep.ok, format_report(rep)


def test_no_temporary_files_left_and_bad_images_are_clear(debian_kernel, tmp_path):
    from fuzz.kernelcheck import KernelCheckError, kernel_check
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*")))
    junk = tmp_path / "vmlinuz-junk"
    junk.write_bytes(b"not a kernel\n" * 100)
    with pytest.raises(KernelCheckError, match="not an x86 bzImage"):
        kernel_check(CORPUS[:1], kernel=str(junk))
    # a real bzImage cut short: qemu loads it, the kernel never reaches /init
    image = sorted(Path(debian_kernel).glob("boot/vmlinuz-*"))[-1]
    cut = tmp_path / image.name
    cut.write_bytes(image.read_bytes()[:3_000_000])
    with pytest.raises(KernelCheckError, match="did not boot to /init"):
        kernel_check(CORPUS[:1], kernel=str(cut), timeout=60)
    # a guest that does not finish: bounded by the timeout
    with pytest.raises(KernelCheckError, match="did not boot|hung"):
        kernel_check(CORPUS[:1], kernel=str(debian_kernel), timeout=1.5)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*"))) == before
