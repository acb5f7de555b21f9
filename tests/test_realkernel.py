"""Real-kernel conformance: the C exporter and the kernel fetcher (always), the qemu check of
corpus/realkernel (when possible).

The export tests need only gcc; the fetcher and layout tests use fake apt answers and fake kernel
trees. The qemu test needs qemu-system-x86_64 and busybox-static (tools/install-realkernel-deps.sh)
and runs on Linux 7.3, the legacy model's base tree: the newest linux-image-7.3*-cloud-amd64 of
Debian experimental or sid, fetched on first use through a private apt configuration and cached in
~/.cache/pmdswap-fuzz/kernel/. Without them it is skipped with the reason. The same check on the
older profiles runs when asked: PMDSWAP_REALKERNEL="linux-6.1 linux-7.2" (each ~1 min under TCG).
"""

from __future__ import annotations

import errno
import glob
import json
import lzma
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from pmdswap_fuzz.fuzz.export_c import ExportError, check_exportable, export_c
from pmdswap_fuzz.fuzz.kernel_profiles import DEFAULT_PROFILE, PROFILES
from pmdswap_fuzz.fuzz.trace import parse_trace
from pmdswap_fuzz.models import ops as O

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


def _expressible(prof: str) -> list[str]:
    out = []
    for path in CORPUS:
        try:
            check_exportable(parse_trace(Path(path).read_text(), path), prof)
        except ExportError:
            continue
        out.append(path)
    return out


def test_corpus_is_big_enough_and_expressible_on_7x_and_mostly_on_6_1():
    assert len(CORPUS) >= 20
    assert DEFAULT_PROFILE == "linux-7.3"
    for path in CORPUS:
        # userfaultfd RWP is new in 7.3: its traces are 7.3-only (linux73-rwp-*)
        profs = ("linux-7.3",) if "-rwp-" in Path(path).name else ("linux-7.3", "linux-7.2")
        for prof in profs:
            check_exportable(parse_trace(Path(path).read_text(), path), prof)
    assert len(_expressible("linux-6.1")) >= 20  # UFFDIO_MOVE and zswap traces are 6.8+ only


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
    # WP only, also for UFFDIO_MOVE: MISSING would route first touches to the handler thread
    # (or RWP for `uffd_register rwp=1`, 7.3)
    assert (".mode = o->c ? UFFDIO_REGISTER_MODE_RWP : UFFDIO_REGISTER_MODE_WP," in src
            and "REGISTER_MODE_MISSING" not in src)
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
        export_c(ops, "bad", "linux-6.1")
    assert e.value.index == 2 and e.value.op == op
    assert "op 2 (" in str(e.value) and why in str(e.value)


def test_7x_and_mainline_profiles_express_what_6_1_cannot():
    ops = [O.Mmap(0, 0, 1024, True), O.UffdRegister(0, 0, 1024), O.UffdMove(0, 0, 512, 1),
           O.ZswapEnable()]
    with pytest.raises(ExportError):
        export_c(ops, "m", "linux-6.1")
    for prof in ("linux-7.3", "linux-7.2", "mainline-legacy"):
        export_c(ops, "m", prof)
    export_c(ops, "m")  # the default: linux-7.3 (CONFIG_ZSWAP=y, UFFDIO_MOVE since 6.8)
    with pytest.raises(ExportError, match="userspace cannot place slots"):
        export_c([O.Fragment()], "m", "mainline-pmd")  # never expressible


def test_profile_lists_each_difference_once_with_source():
    for prof in PROFILES.values():
        keys = [d.key for d in prof.differences]
        assert len(keys) == len(set(keys))
        for d in prof.differences:
            assert d.source and d.what and d.handling in ("model", "observe", "export", "none")
            for bad in ("../", "/work/", "/tmp/"):  # only the project's own paths
                assert bad not in d.source + d.what, (prof.name, d.key)


def test_each_real_kernel_profile_names_its_package_and_the_kernel_rule_for_bit_56():
    from pmdswap_fuzz.fuzz.kernel_profiles import make_model
    from pmdswap_fuzz.models.legacy import LegacyKernel
    want = {"linux-7.3": ("7.3", ("experimental", "sid")), "linux-7.2": ("7.2", ("sid",)),
            "linux-6.1": ("6.1", ())}
    for name, (series, suites) in want.items():
        prof = PROFILES[name]
        assert (prof.package.series, prof.package.suites) == (series, suites)
        assert prof.model == "legacy" and prof.observable_rules["exclusive"] == "mapcount1"
        assert prof.has("pagemap_exclusive_is_mapcount")
    # 7.3 is the model's own tree: nothing but how bit 56 and swap offsets are observed
    assert {d.handling for d in PROFILES["linux-7.3"].differences} == {"observe"}
    assert type(make_model(PROFILES["linux-7.3"])) is LegacyKernel
    assert type(make_model(PROFILES["linux-7.2"])) is LegacyKernel  # no model-handled row
    assert not any(d.handling == "model" for d in PROFILES["linux-7.2"].differences)
    assert type(make_model(PROFILES["linux-6.1"])) is not LegacyKernel
    assert PROFILES["mainline-pmd"].package is None and PROFILES["mainline-legacy"].package is None


def test_6_1_split_of_a_dirty_pmd_leaves_ptes_not_soft_dirty():
    """split_dirty_pmd_not_soft_dirty: after clear_refs a pageout that splits the THP gives 512
    soft-dirty swap PTEs on 7.3 (pte_mkdirty sets _PAGE_SOFT_DIRTY on x86), none on 6.1."""
    from pmdswap_fuzz.fuzz.kernel_profiles import make_model
    from pmdswap_fuzz.models.observe import observe
    ops = parse_trace((ROOT / "corpus/realkernel/softdirty-across_swap.trace").read_text())
    sd = {}
    for name in ("linux-7.3", "linux-6.1"):
        k = make_model(PROFILES[name])
        for op in ops[:4]:
            k.apply(op)
        sd[name] = int(observe(k).procs[0].soft_dirty[:512].sum())
    assert sd == {"linux-7.3": 512, "linux-6.1": 0}


def test_kernel_check_rejects_a_bad_trace_before_anything_runs(tmp_path):
    from pmdswap_fuzz.fuzz.kernelcheck import KernelCheckError, kernel_check
    t = tmp_path / "frag.trace"
    t.write_text("pmdswap-trace 1\nmmap pid=0 start=0 npages=512 hugepage=1\nfragment\n")
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*")))
    with pytest.raises(KernelCheckError, match=r"frag.trace: op 1 \(fragment\): cannot be expressed"):
        kernel_check([str(t)])
    with pytest.raises(KernelCheckError, match="not a text trace|missing version header"):
        kernel_check([str(tmp_path / "frag.trace"), __file__])
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*"))) == before


# ---------------------------------------------------------------------------------------------
# fetching the kernel (fake apt answers, nothing leaves the machine)
# ---------------------------------------------------------------------------------------------
def test_debian_version_order():
    from pmdswap_fuzz.fuzz.kernel_fetch import debian_version_cmp as cmp
    assert cmp("7.3~rc7-1~exp1", "7.3-1") < 0  # a release candidate sorts before the release
    assert cmp("7.3-1", "7.3.1-1") < 0 and cmp("7.2.13-1", "7.3~rc7-1~exp1") < 0
    assert cmp("6.1.192-3", "6.1.192-2") > 0 and cmp("2.10", "2.9") > 0
    assert cmp("1:1.0", "9.0") > 0 and cmp("1.0", "1.0-0") == 0


def test_package_patterns_take_any_point_release_and_no_debug_package():
    import re
    from pmdswap_fuzz.fuzz.kernel_fetch import KERNEL_PACKAGES as K
    match = {n: [p for p, s in K.items() if re.fullmatch(s.pattern, n)] for n in (
        "linux-image-7.3-cloud-amd64", "linux-image-7.3.2+deb14-cloud-amd64",
        "linux-image-7.2.13+deb14-cloud-amd64", "linux-image-6.1.0-57-cloud-amd64",
        "linux-image-7.3-cloud-amd64-dbg", "linux-image-7.30-cloud-amd64",
        "linux-image-7.3-amd64")}
    assert match == {"linux-image-7.3-cloud-amd64": ["linux-7.3"],
                     "linux-image-7.3.2+deb14-cloud-amd64": ["linux-7.3"],
                     "linux-image-7.2.13+deb14-cloud-amd64": ["linux-7.2"],
                     "linux-image-6.1.0-57-cloud-amd64": ["linux-6.1"],
                     "linux-image-7.3-cloud-amd64-dbg": [], "linux-image-7.30-cloud-amd64": [],
                     "linux-image-7.3-amd64": []}


def _fake_etc(tmp_path) -> Path:
    etc = tmp_path / "etc-apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    return etc


def test_private_apt_configuration_uses_the_system_mirror_and_changes_nothing_else(tmp_path,
                                                                                   monkeypatch):
    from pmdswap_fuzz.fuzz.kernel_fetch import KernelFetchError, private_apt, system_mirror
    monkeypatch.delenv("PMDSWAP_DEBIAN_MIRROR", raising=False)
    etc = _fake_etc(tmp_path)
    before = {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()}
    assert system_mirror(etc) == "http://mirror.example/debian"
    with pytest.raises(KernelFetchError, match="PMDSWAP_DEBIAN_MIRROR"):
        system_mirror(tmp_path / "nothing")
    monkeypatch.setenv("PMDSWAP_DEBIAN_MIRROR", "http://mirror.example/other/")
    assert system_mirror(tmp_path / "nothing") == "http://mirror.example/other"
    one = tmp_path / "etc-one"
    one.mkdir()
    (one / "sources.list").write_text("deb [arch=amd64] https://m.example/debian bookworm main\n")
    assert system_mirror(one) == "https://m.example/debian"
    apt = private_apt(("experimental", "sid"), tmp_path / "cache", etc)
    src = (tmp_path / "cache" / "apt" / "sources.list").read_text()
    key = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]"
    assert src == (f"deb {key} http://mirror.example/debian experimental main\n"
                   f"deb {key} http://mirror.example/debian sid main\n")
    opts = " ".join(apt.opts)
    root = tmp_path / "cache" / "apt"
    for o in (f"Dir::Etc::sourcelist={root / 'sources.list'}", "Dir::Etc::sourceparts=/nonexistent",
              f"Dir::State::Lists={root / 'lists'}", f"Dir::Cache={root / 'cache'}"):
        assert f"-o {o}" in opts
    assert {p: p.read_bytes() for p in etc.rglob("*") if p.is_file()} == before


class _FakeApt:
    """apt-get / apt-cache answers for fetch_kernel(), and dpkg -x of fake .debs."""

    MADISON = {
        "linux-image-7.3-cloud-amd64": [
            ("7.3~rc7-1~exp1", "experimental/main"), ("7.3~rc6-1~exp1", "experimental/main")],
        "linux-image-7.3.1+deb14-cloud-amd64": [("7.3.1-1", "sid/main")],
        "linux-image-7.2.13+deb14-cloud-amd64": [("7.2.13-1", "sid/main")],
        "linux-image-7.2.14+deb14-cloud-amd64": [("7.2.14-1", "experimental/main")],
    }

    def __init__(self):
        self.calls = []

    def method(self):
        return lambda apt, tool, *args, **kw: self(apt, tool, *args, **kw)

    def __call__(self, apt, tool, *args, cwd=None, timeout=300):
        self.calls.append((tool, args))
        out = ""
        if args[:1] == ("update",):
            pass
        elif args[:1] == ("pkgnames",):
            out = "\n".join(list(self.MADISON) + ["linux-image-7.3-cloud-amd64-dbg"])
        elif args[:1] == ("madison",):
            out = "".join(f"{n} | {v} | http://m/debian {s} amd64 Packages\n"
                          for n in args[1:] for v, s in self.MADISON.get(n, []))
        elif args[:1] == ("show",):
            name, _, ver = args[1].partition("=")
            base = name.replace("linux-image-", "")
            out = (f"Package: {name}\nVersion: {ver}\nDepends: dracut | initramfs-tools, "
                   f"linux-base-{base} (= {ver}), linux-modules-{base} (= {ver}), kmod\n")
        elif args[:1] == ("download",):
            for want in args[1:]:
                name, _, ver = want.partition("=")
                (Path(cwd) / f"{name}_{ver}_amd64.deb").write_text(want)
        return subprocess.CompletedProcess([tool, *args], 0, out, "")


def _fake_dpkg(monkeypatch):
    real = subprocess.run

    def run(cmd, *a, **kw):
        if cmd[:2] == ["dpkg", "-x"]:
            deb, dest = Path(cmd[2]), Path(cmd[3])
            name = deb.read_text().split("=")[0]
            (dest / "usr" / "lib" / "modules" / "V").mkdir(parents=True, exist_ok=True)
            (dest / "usr" / "lib" / "modules" / "V" / name).write_text(deb.read_text())
            return subprocess.CompletedProcess(cmd, 0, "", "")
        return real(cmd, *a, **kw)
    monkeypatch.setattr(subprocess, "run", run)


def test_fetch_picks_the_highest_version_across_suites_and_reuses_a_verified_cache(
        tmp_path, monkeypatch):
    from pmdswap_fuzz.fuzz import kernel_fetch as kf
    fake = _FakeApt()
    monkeypatch.setattr(kf.AptConfig, "run", fake.method())
    _fake_dpkg(monkeypatch)
    cache, etc = tmp_path / "cache", _fake_etc(tmp_path)
    k = kf.fetch_kernel(kf.KERNEL_PACKAGES["linux-7.3"], cache, etc)
    # 7.3.1-1 in sid beats 7.3~rc7 in experimental; the metapackage's (= version) deps come along
    assert (k.package, k.version, k.suite) == ("linux-image-7.3.1+deb14-cloud-amd64", "7.3.1-1",
                                               "sid")
    dl = [a for t, a in fake.calls if a[:1] == ("download",)]
    assert dl == [("download", "linux-image-7.3.1+deb14-cloud-amd64=7.3.1-1",
                   "linux-base-7.3.1+deb14-cloud-amd64=7.3.1-1",
                   "linux-modules-7.3.1+deb14-cloud-amd64=7.3.1-1")]
    m = json.loads((k.tree / "manifest.json").read_text())
    assert m["version"] == "7.3.1-1" and m["tree_sha256"] == k.tree_sha256 and len(m["debs"]) == 3
    # 7.2 only from sid: 7.2.14 in experimental does not count
    k72 = kf.fetch_kernel(kf.KERNEL_PACKAGES["linux-7.2"], cache, etc)
    assert (k72.version, k72.suite) == ("7.2.13-1", "sid")
    # again: the cached tree is verified and reused, nothing downloaded
    fake.calls.clear()
    again = kf.fetch_kernel(kf.KERNEL_PACKAGES["linux-7.3"], cache, etc)
    assert again.tree == k.tree and not [a for t, a in fake.calls if a[:1] == ("download",)]
    # a cached tree that was changed is refused
    next(p for p in k.tree.rglob("linux-modules*")).write_text("tampered")
    with pytest.raises(kf.KernelFetchError, match="does not match its recorded sha256"):
        kf.fetch_kernel(kf.KERNEL_PACKAGES["linux-7.3"], cache, etc)


def test_fetch_falls_back_to_the_cache_when_apt_cannot_answer(tmp_path, monkeypatch):
    from pmdswap_fuzz.fuzz import kernel_fetch as kf
    monkeypatch.setattr(kf.AptConfig, "run", _FakeApt().method())
    _fake_dpkg(monkeypatch)
    cache, etc = tmp_path / "cache", _fake_etc(tmp_path)
    k = kf.fetch_kernel(kf.KERNEL_PACKAGES["linux-7.3"], cache, etc)

    def offline(apt, tool, *args, **kw):
        raise kf.KernelFetchError("apt-get update timed out")
    monkeypatch.setattr(kf.AptConfig, "run", offline)
    (cache / "apt" / "lists" / ".updated").unlink()
    again = kf.fetch_kernel(kf.KERNEL_PACKAGES["linux-7.3"], cache, etc)
    assert again.tree == k.tree and "cached" in again.note
    with pytest.raises(kf.KernelFetchError, match="none is cached"):
        kf.fetch_kernel(kf.KERNEL_PACKAGES["linux-7.3"], tmp_path / "empty", etc)


# ---------------------------------------------------------------------------------------------
# kernel trees: 6.1's layout and 7.x's merged /usr with compressed modules
# ---------------------------------------------------------------------------------------------
def _bzimage(version: str) -> bytes:
    img = bytearray(0x1000)
    img[0x202:0x206] = b"HdrS"
    img[0x20E:0x210] = (0x400).to_bytes(2, "little")  # version string at 0x600
    v = f"{version} (debian-kernel@lists.debian.org) #1 SMP".encode()
    img[0x600:0x600 + len(v)] = v
    return bytes(img)


def _module(name: str, depends: str = "") -> bytes:
    return b"\x7fELF fake module\0name=" + name.encode() + b"\0depends=" + depends.encode() + b"\0"


def _tree(tmp_path, layout: str) -> Path:
    t = tmp_path / layout
    if layout == "7x":
        v = "7.3-cloud-amd64"
        mods = t / "usr" / "lib" / "modules" / v
        (mods / "kernel" / "drivers").mkdir(parents=True)
        (mods / "vmlinuz").write_bytes(_bzimage(v))
        (mods / "config").write_text("CONFIG_PROC_MEM_FORCE_PTRACE=y\n")
        for n, d in (("virtio_blk", ""), ("zram", "lz4hc_compress"), ("lz4hc_compress", "")):
            (mods / "kernel" / "drivers" / f"{n}.ko.xz").write_bytes(lzma.compress(_module(n, d)))
    else:
        v = "6.1.0-57-cloud-amd64"
        (t / "boot").mkdir(parents=True)
        (t / "boot" / f"vmlinuz-{v}").write_bytes(_bzimage(v))
        (t / "boot" / f"config-{v}").write_text("CONFIG_PROC_MEM_ALWAYS_FORCE=y\n")
        mods = t / "lib" / "modules" / v
        (mods / "kernel").mkdir(parents=True)
        for n, d in (("virtio", "virtio_ring"), ("virtio_ring", ""), ("virtio_blk", "virtio"),
                     ("zram", ""), ("lzo-rle", "")):
            (mods / "kernel" / f"{n}.ko").write_bytes(_module(n, d))
    return t


def _cpio_names(data: bytes) -> dict[str, bytes]:
    out, i = {}, 0
    while i < len(data) and data[i:i + 6] == b"070701":
        size, nlen = int(data[i + 54:i + 62], 16), int(data[i + 94:i + 102], 16)
        name = data[i + 110:i + 110 + nlen - 1].decode()
        j = i + 110 + nlen
        j += -j % 4
        out[name] = data[j:j + size]
        i = j + size + (-(j + size) % 4)
        if name == "TRAILER!!!":
            break
    return out


@pytest.mark.parametrize("layout", ["7x", "61"])
def test_kernel_tree_layouts_modules_and_command_line(tmp_path, layout):
    from pmdswap_fuzz.fuzz.kernelcheck import (MODULES, _module_order, _pick_profile, build_initramfs,
                                  kernel_cmdline, resolve_kernel)
    t = resolve_kernel(str(_tree(tmp_path, layout)))
    if layout == "7x":
        assert t.version == "7.3-cloud-amd64" and t.image.name == "vmlinuz"
        assert t.modules == t.image.parent and t.config.name == "config"
        assert [m.name for m in _module_order(t.modules, MODULES)] == [
            "virtio_blk.ko.xz", "lz4hc_compress.ko.xz", "zram.ko.xz"]
        assert kernel_cmdline(t).endswith(" proc_mem.force_override=always")
        assert _pick_profile("legacy", t, None).name == "linux-7.3"
    else:
        assert t.version == "6.1.0-57-cloud-amd64" and t.image.parent.name == "boot"
        assert t.modules.name == t.version and t.modules.parent.name == "modules"
        assert [m.name for m in _module_order(t.modules, MODULES)][-3:] == [
            "virtio_blk.ko", "zram.ko", "lzo-rle.ko"]
        assert "proc_mem" not in kernel_cmdline(t)  # CONFIG_PROC_MEM_ALWAYS_FORCE=y
        assert _pick_profile("legacy", t, None).name == "linux-6.1"
    assert _pick_profile("pmd", t, None).name == "mainline-pmd"
    assert _pick_profile("legacy", t, "linux-7.2").name == "linux-7.2"
    files = _cpio_names(build_initramfs(t, b"prog", ["t000", "t001"], 60, busybox=b"bb"))
    assert files["t/traces"] == b"prog" and files["traces"] == b"t000 0\nt001 1\n"
    load = files["modules.load"].decode().split()
    assert "zram" in load and all(f"lib/modules/{m}.ko" in files for m in load)
    assert files["lib/modules/zram.ko"].startswith(b"\x7fELF")  # .ko.xz decompressed (lzma)
    assert not any(n.endswith(".xz") for n in files)


def test_report_names_the_kernel_version_package_and_checksum():
    from pmdswap_fuzz.fuzz.kernelcheck import KernelReport, TraceResult, format_report, report_json
    rep = KernelReport("7.3-cloud-amd64", "/k/vmlinuz", "linux-7.3", "legacy", "tcg", 3.5, 20.0,
                       [TraceResult("a.trace", True, 3, 0.1)], sha256="ab" * 32,
                       kernel_package="linux-image-7.3-cloud-amd64 7.3~rc7-1~exp1 (Debian "
                       "experimental)", kernel_build="Linux version 7.3-cloud-amd64 ...")
    text = format_report(rep)
    assert "7.3~rc7-1~exp1" in text and "ab" * 32 in text and "profile linux-7.3" in text
    assert text.splitlines()[-1].endswith("sha256 " + "ab" * 8)
    j = json.loads(report_json(rep))
    assert j["kernel"]["sha256"] == "ab" * 32 and j["kernel"]["version"] == "7.3-cloud-amd64"
    assert j["kernel"]["package"].startswith("linux-image-7.3-cloud-amd64 7.3~rc7")
    assert j["profile"] == "linux-7.3" and j["results"][0]["ok"]


def test_inexpressible_traces_stop_the_check_or_are_skipped(tmp_path):
    from pmdswap_fuzz.fuzz.kernelcheck import KernelCheckError, kernel_check
    move = next(p for p in CORPUS if p not in _expressible("linux-6.1"))
    with pytest.raises(KernelCheckError, match="UFFDIO_MOVE does not exist|no zswap"):
        kernel_check([move], profile="linux-6.1")
    with pytest.raises(KernelCheckError, match="no trace can be expressed on profile linux-6.1"):
        kernel_check([move], profile="linux-6.1", skip_inexpressible=True)


def test_a_profile_without_a_package_needs_a_kernel(tmp_path):
    from pmdswap_fuzz.fuzz.kernelcheck import KernelCheckError, kernel_check
    with pytest.raises(KernelCheckError, match="names no kernel package.*pass --kernel"):
        kernel_check(CORPUS[:1], model="pmd")
    with pytest.raises(KernelCheckError, match="names no kernel package"):
        kernel_check(CORPUS[:1], profile="mainline-legacy")


# ---------------------------------------------------------------------------------------------
# on a real kernel under qemu
# ---------------------------------------------------------------------------------------------
def _real_kernel(profile: str) -> Path:
    from pmdswap_fuzz.fuzz.kernelcheck import KernelCheckError, fetch_debian_kernel, qemu_available
    missing = qemu_available()
    if missing:
        pytest.skip(f"real-kernel check skipped: {missing}")
    try:
        return fetch_debian_kernel(profile)
    except KernelCheckError as e:
        pytest.skip(f"real-kernel check skipped: cannot get the {profile} kernel "
                    f"({PROFILES[profile].package.describe()}): {e}")


@pytest.fixture(scope="module")
def debian_kernel():
    return _real_kernel("linux-7.3")


@pytest.fixture(scope="module")
def corpus_report(debian_kernel):
    from pmdswap_fuzz.fuzz.kernelcheck import format_report, kernel_check
    rep = kernel_check(CORPUS)  # the defaults: profile linux-7.3 and its package
    print("\n" + format_report(rep))
    return rep


def test_corpus_agrees_with_legacy_model_on_linux_7_3(corpus_report, debian_kernel):
    from pmdswap_fuzz.fuzz.kernelcheck import format_report
    rep = corpus_report
    manifest = json.loads((Path(debian_kernel) / "manifest.json").read_text())
    assert rep.kernel_version.startswith("7.3")
    assert rep.kernel_package.startswith(f"{manifest['package']} {manifest['version']}")
    assert rep.sha256 == manifest["tree_sha256"]
    assert "proc_mem.force_override=always" in rep.cmdline
    assert rep.profile == "linux-7.3" and rep.model == "legacy"
    assert len(rep.results) == len(CORPUS)
    assert rep.ok, format_report(rep)


@pytest.mark.parametrize("profile", ["linux-6.1", "linux-7.2"])
def test_corpus_agrees_with_legacy_model_on_older_kernels(profile):
    from pmdswap_fuzz.fuzz.kernelcheck import format_report, kernel_check
    if profile not in os.environ.get("PMDSWAP_REALKERNEL", "").replace(",", " ").split():
        pytest.skip(f"{profile} real-kernel check runs when asked: PMDSWAP_REALKERNEL={profile}")
    tree = _real_kernel(profile)
    traces = _expressible(profile)
    # the profile follows from the version; each model-handled difference must be needed by a trace
    rep = kernel_check(traces, kernel=str(tree), prove_differences=True)
    print("\n" + format_report(rep))
    assert rep.profile == profile and rep.kernel_version.startswith(profile[len("linux-"):])
    assert rep.ok, format_report(rep)
    assert not rep.unproven, format_report(rep)


def test_no_temporary_files_left_and_bad_images_are_clear(debian_kernel, tmp_path):
    from pmdswap_fuzz.fuzz.kernelcheck import KernelCheckError, kernel_check, resolve_kernel
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*")))
    junk = tmp_path / "vmlinuz-junk"
    junk.write_bytes(b"not a kernel\n" * 100)
    with pytest.raises(KernelCheckError, match="not an x86 bzImage"):
        kernel_check(CORPUS[:1], kernel=str(junk))
    # a real bzImage cut short: qemu loads it, the kernel never reaches /init
    image = resolve_kernel(str(debian_kernel)).image
    cut = tmp_path / image.name
    cut.write_bytes(image.read_bytes()[:3_000_000])
    with pytest.raises(KernelCheckError, match="did not boot to /init"):
        kernel_check(CORPUS[:1], kernel=str(cut), timeout=60)
    # a guest that does not finish: bounded by the timeout
    with pytest.raises(KernelCheckError, match="did not boot|hung"):
        kernel_check(CORPUS[:1], kernel=str(debian_kernel), timeout=1.5)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "pmdswap-kcheck-*"))) == before


# ---- the swap-offset structure rule of the comparison (no qemu) -----------------------------------
def _kernel_obs(k, kslot) -> dict:
    """K: lines a kernel would print for the model's own state, swap offsets mapped by kslot()."""
    from pmdswap_fuzz.models.observe import NONE, PRESENT, SWAPPED, observe

    obs, kobs = observe(k), {}
    for pid, po in obs.procs.items():
        runs = []
        for i in np.flatnonzero(po.state != 0):
            st = {PRESENT: "P", SWAPPED: "S", NONE: "N"}[int(po.state[i])]
            fl = st + ("d" if po.soft_dirty[i] else "") + ("w" if po.uffd_wp[i] else "")
            sw = f"@0:{kslot(int(po.swp_off[i]))}" if st == "S" else ""
            runs.append(f"{i}+1:{fl}{sw}")
        kobs[f"p{pid}.pm"] = ";".join(runs)
    return obs, kobs


def _swap_diffs(k, kslot) -> list[str]:
    from pmdswap_fuzz.fuzz.kernelcheck import _compare_obs

    obs, kobs = _kernel_obs(k, kslot)
    return [d for d in _compare_obs("t", k, obs, kobs, PROFILES["linux-7.3"], final=False)
            if d.startswith("swap:")]


def _order0_spill_and_a_thp():
    """600 order-0 swap-outs (slots 1-511 and 512-600: order-0 slots in cluster 1) and a THP
    swapped out whole (one order-9 allocation, cluster 2)."""
    from pmdswap_fuzz.models.legacy import LegacyKernel

    k = LegacyKernel()
    for op in (O.Mmap(0, 0, 1024, hugepage=False), O.Write(0, 0, 600, value=1),
               O.Pageout(0, 0, 600), O.Mmap(0, 1536, 512, hugepage=True),
               O.Write(0, 1536, 512, value=2), O.Pageout(0, 1536, 512)):
        assert k.apply(op) == 0
    m = k.mms[0]
    assert (m.pte_swp_off[512:600] // 512 == 1).all()
    assert not k.swap.alloc_id[m.pte_swp_off[:600]].any()
    return k


def test_swap_structure_rule_ignores_order0_slots_in_a_cluster_above_512():
    """gen-s1-29 op 31, gen-s1-13 op 27: model order-0 slots in cluster 1 are anywhere on 7.3
    (per-CPU clusters); only the slots of one order-9 allocation must be base + i."""
    k = _order0_spill_and_a_thp()
    thp_base = 1024
    assert (k.swap.alloc_id[thp_base:thp_base + 512] != 0).all()
    # order-0 slots scrambled (still a bijection), the THP at another base but contiguous
    scramble = {s: 5000 - s for s in range(1, 1024)}
    assert _swap_diffs(k, lambda s: scramble.get(s, s + 2048)) == []


def test_swap_structure_rule_still_catches_a_thp_not_at_base_plus_i():
    k = _order0_spill_and_a_thp()
    swapped = {1024 + 7: 1024 + 2048 + 9, 1024 + 9: 1024 + 2048 + 7}  # two THP pages swapped
    diffs = _swap_diffs(k, lambda s: swapped.get(s, s + 2048))
    assert any("one order-9 allocation" in d and "not base+i" in d for d in diffs), diffs


def test_swap_structure_rule_forgets_thp_slots_once_freed():
    """A THP's slot freed (the page swapped in by a write fault, which frees the exclusive slot:
    should_try_to_free_swap()) is no longer part of the THP's allocation, so a later order-0
    allocation of it is not taken for the THP; the rest of the THP's slots still are."""
    k = _order0_spill_and_a_thp()
    for op in (O.Evict(), O.Fault(0, 1536 + 3, write=True)):
        assert k.apply(op) == 0
    assert not k.swap.used[1024 + 3] and k.swap.alloc_id[1024 + 3] == 0
    assert (k.swap.alloc_id[1024:1024 + 3] == k.swap.alloc_id[1024 + 4]).all()
    assert k.apply(O.Pageout(0, 1536 + 3, 1)) == 0
    s = int(k.mms[0].pte_swp_off[1536 + 3])
    assert s >= 0 and k.swap.alloc_id[s] == 0
    kmap = {s: 9999}  # the kernel put the re-swapped page elsewhere
    assert _swap_diffs(k, lambda x: kmap.get(x, x + 2048)) == []
    kmap[1024 + 100] = 1024 + 2048 + 101  # but the THP's remaining slots must stay base + i
    kmap[1024 + 101] = 1024 + 2048 + 100
    assert any("not base+i" in d for d in _swap_diffs(k, lambda x: kmap.get(x, x + 2048)))


def test_6_1_refuses_a_move_over_several_vmas_after_unmapping_the_destination():
    """no_multi_vma_mremap_move: 7.3 moves both VMAs; 6.1 unmaps the destination, then -EFAULT;
    with no VMA at the start 6.1 refuses before unmapping anything."""
    from pmdswap_fuzz.fuzz.kernel_profiles import make_model
    from pmdswap_fuzz.models.observe import UNMAPPED, observe
    ops = parse_trace((ROOT / "corpus/realkernel/linux73-m7-multi_vma_move.trace").read_text())
    got = {}
    for name in ("linux-7.3", "linux-6.1"):
        k = make_model(PROFILES[name])
        for op in ops[:6]:
            k.apply(op)
        r6 = k.apply(ops[6])
        dst_unmapped = bool((observe(k).procs[0].state[1056:1072] == UNMAPPED).all())
        got[name] = (r6, dst_unmapped, k.apply(ops[7]))
    assert got["linux-7.3"][0] == 0 and not got["linux-7.3"][1]  # the gap's VMA stays
    assert got["linux-6.1"] == (-errno.EFAULT, True, -errno.EFAULT)


def test_6_1_model_leaves_out_one_difference_at_a_time():
    """kernel-check --prove-differences compares again with one model-handled difference left
    out: the 6.1 model then behaves as 7.3 there and as 6.1 everywhere else."""
    from pmdswap_fuzz.fuzz.kernel_profiles import make_model
    from pmdswap_fuzz.models import ops as O
    model_keys = [d.key for d in PROFILES["linux-6.1"].differences if d.handling == "model"]
    assert len(model_keys) >= 13
    for key in model_keys:
        assert make_model(PROFILES["linux-6.1"], frozenset({key})).without == {key}
    with pytest.raises(ValueError, match="not a model-handled difference"):
        make_model(PROFILES["linux-6.1"], frozenset({"no_uffdio_move"}))  # export-handled
    with pytest.raises(ValueError, match="no model-handled differences"):
        make_model(PROFILES["linux-7.3"], frozenset({"no_pt_reclaim"}))

    def pmd_after_dontneed(k):
        for op in (O.Mmap(0, 0, 512, hugepage=True), O.Write(0, 0, 512, value=1),
                   O.Pageout(0, 0, 512), O.Dontneed(0, 0, 512)):
            k.apply(op)
        return int(k.mms[0].pmd_kind[0])
    full = pmd_after_dontneed(make_model(PROFILES["linux-6.1"]))
    without = pmd_after_dontneed(make_model(PROFILES["linux-6.1"], frozenset({"no_pt_reclaim"})))
    assert without == pmd_after_dontneed(make_model(PROFILES["linux-7.3"])) != full


@pytest.mark.parametrize("trace,key,upto,pages", [
    ("linux73-evict_mlock_merges_vmas", "unfaulted_target_refuses_merge", 7, (1, range(0, 512))),
    ("linux73-mremap_self_merge_softdirty", "vm_softdirty_not_sticky", 4, (0, range(0, 512))),
])
def test_6_1_vma_merge_rules(trace, key, upto, pages):
    """6.1's is_mergeable_anon_vma() refuses to merge a faulted range into an unfaulted VMA, and
    6.1 keeps the changed (or, for copy_vma(), the surviving) VMA's VM_SOFTDIRTY instead of the
    sticky OR: the pages the real 6.1 kernel reads as not soft-dirty (kernel 0) are soft-dirty in
    the 7.3 model and in the 6.1 model without that difference."""
    from pmdswap_fuzz.fuzz.kernel_profiles import make_model
    from pmdswap_fuzz.models.observe import observe
    ops = parse_trace((ROOT / f"corpus/realkernel/{trace}.trace").read_text())[:upto]
    pid, rng = pages

    def soft_dirty(k):
        for op in ops:
            k.apply(op)
        return bool(observe(k).procs[pid].soft_dirty[list(rng)].any())
    assert not soft_dirty(make_model(PROFILES["linux-6.1"]))
    assert soft_dirty(make_model(PROFILES["linux-6.1"], frozenset({key})))
    assert soft_dirty(make_model(PROFILES["linux-7.3"]))


def test_report_lists_unproven_differences():
    from pmdswap_fuzz.fuzz.kernelcheck import KernelReport, format_report, report_json
    rep = KernelReport("6.1", "img", "linux-6.1", "legacy", "tcg", 1.0, 2.0,
                       proofs=[("no_pt_reclaim", [("a.trace", 4)]), ("no_zeromap", [])])
    text = format_report(rep)
    assert "difference no_pt_reclaim: needed by 1 trace(s), e.g. a.trace (op 4)" in text
    assert "difference no_zeromap: NOT PROVEN" in text
    assert rep.unproven == ["no_zeromap"]
    assert json.loads(report_json(rep))["proofs"][1] == {"difference": "no_zeromap", "needed_by": []}
