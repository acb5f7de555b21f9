"""The real kernel as a third model in campaigns: `pmdswap-fuzz kernel-check --generate N --seed S`.

    generate_check(n, seed, ...) -> GenerateReport

Draws N sequences from the fuzzer's own generator (fuzz/gen.py, the `random` engine's), keeps the
ops the kernel can express (fuzz/export_c.py check_exportable: fragment is dropped, swapoff's
fail_alloc switch is cleared, an op reaching past the window is dropped), runs all of them in one
qemu boot (fuzz/kernelcheck.py boot_and_run) and compares each with the profile's model op by op.
Sequence i of seed S is `generate(numpy.random.default_rng([S, i]), length)`, so any one of them
can be drawn again without the others.

Each disagreement is saved as a trace under `out_dir` (never over an existing file) with the seed,
index, kernel and first mismatch in its header, then minimised against the kernel: every round
builds, for every disagreement still shrinking, the candidates that drop one chunk of ops (chunks
of L/2, L/4, ... 1 op), runs all candidates of all disagreements in one boot, and keeps the
shortest candidate whose first mismatch is about the same observable. It stops when no candidate
disagrees, after `min_rounds` rounds, or when the time budget is spent; the result is saved next
to the trace as `.min.trace`. Only one disagreement per signature (the observable and the op of
the first mismatch) is minimised, the shortest.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pmdswap_fuzz.models import ops as O

from .artifacts import create_unique
from .export_c import _why_not
from .gen import generate
from .kernel_profiles import Profile
from .kernelcheck import (KernelCheckError, KernelReport, TraceResult, _check_boot, _new_report,
                          _pick_profile, boot_and_run, judge, kernel_cmdline, mismatch_observable,
                          qemu_available, resolve_kernel)
from .trace import format_op, format_trace

__all__ = ["draw", "expressible_ops", "generate_check", "GenerateReport", "format_generate",
           "generate_json"]


def expressible_ops(ops: list[O.Op], prof: Profile) -> list[O.Op]:
    """`ops` with what the kernel of `prof` cannot express taken out: an op with the fail_alloc
    switch keeps the op without it; any other inexpressible op (fragment, a range past the window,
    zswap or UFFDIO_MOVE on a kernel without them) is dropped."""
    out = []
    for op in ops:
        if getattr(op, "fail_alloc", False):
            op = dataclasses.replace(op, fail_alloc=False)
        if _why_not(op, prof) is None:
            out.append(op)
    return out


def draw(n: int, seed: int, length: int, prof: Profile) -> list[tuple[str, list[O.Op]]]:
    """Sequences 0..n-1 of `seed`: (name, ops), each drawn from its own generator state."""
    out = []
    for i in range(n):
        ops = expressible_ops(generate(np.random.default_rng([seed, i]), length), prof)
        out.append((f"gen-s{seed}-{i}", ops))
    return out


@dataclass
class Disagreement:
    index: int  # sequence index within the seed
    result: TraceResult
    observable: str
    ops: list[O.Op]
    saved: Path | None = None
    minimized: list[O.Op] | None = None
    minimized_saved: Path | None = None
    rounds: int = 0  # minimisation rounds run

    @property
    def signature(self) -> str:
        """What differed and at which kind of op: `soft_dirty@pageout`."""
        op = self.ops[self.result.op_index] if self.result.op_index is not None and \
            0 <= self.result.op_index < len(self.ops) else None
        return f"{self.observable}@{op.name if op is not None else 'end'}"


@dataclass
class GenerateReport:
    seed: int
    length: int
    report: KernelReport  # the main boot: one result per sequence
    disagreements: list[Disagreement] = field(default_factory=list)
    boots: int = 1
    seconds: float = 0.0
    budget_hit: bool = False
    not_run: int = 0  # sequences the time budget left out of the main boot

    @property
    def agreed(self) -> int:
        return sum(r.ok for r in self.report.results)


def _chunk_removals(ops: list[O.Op]) -> list[tuple[range, list[O.Op]]]:
    """`ops` without one chunk, with the index range dropped: chunk sizes L/2, L/4, ..., 1, every
    aligned offset; no repeated candidate, no empty one."""
    seen, out = set(), []
    size = max(1, len(ops) // 2)
    while True:
        for lo in range(0, len(ops), size):
            cand = ops[:lo] + ops[lo + size:]
            key = tuple(cand)
            if cand and key not in seen:
                seen.add(key)
                out.append((range(lo, min(len(ops), lo + size)), cand))
        if size == 1:
            return out
        size = max(1, size // 2)


def _chunk_candidates(ops: list[O.Op]) -> list[list[O.Op]]:
    return [cand for _, cand in _chunk_removals(ops)]


def _without(ops: list[O.Op], drop: set[int]) -> list[O.Op]:
    return [op for i, op in enumerate(ops) if i not in drop]


def _header(seed: int, d: Disagreement, rep: KernelReport, minimized: bool) -> list[str]:
    r = d.result
    lines = [f"kernel-check --generate: seed {seed}, sequence {d.index}"
             + (" (minimised against the kernel)" if minimized else ""),
             f"kernel {rep.kernel_version} ({rep.kernel_package or rep.kernel_image}), sha256 "
             f"{(rep.sha256 or '-')[:16]}, profile {rep.profile}, model {rep.model}",
             f"first mismatch ({d.observable}) of the drawn sequence:"]
    lines += ["  " + s for s in (r.mismatch or "").splitlines()[:6]]
    return lines


def generate_check(n: int, seed: int, length: int = 32, kernel: str | None = None,
                   profile: str | None = None, out_dir: str | Path = "artifacts/kernel-check",
                   minimize: bool = True, min_rounds: int = 8, per_trace_timeout: int = 60,
                   time_budget: float | None = None, keep_log: str | None = None,
                   log=None) -> GenerateReport:
    """Draw `n` sequences of `length` ops with `seed`, run them in one boot, compare each with the
    legacy model (profile `profile`, default linux-7.3), save and minimise every disagreement.
    `time_budget` (seconds, from the call) bounds the minimisation: no round starts after it."""
    t0 = time.monotonic()
    if n < 1 or length < 1:
        raise KernelCheckError(f"--generate needs N >= 1 and --length >= 1 (got {n}, {length})")
    prof = _pick_profile("legacy", None, profile)
    if kernel is None and prof.package is None:
        raise KernelCheckError(f"profile {prof.name} names no kernel package: pass --kernel IMAGE")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise KernelCheckError(f"{out}: not a directory")
    missing = qemu_available()
    if missing:
        raise KernelCheckError(missing)
    tree = resolve_kernel(kernel, prof, log)
    if kernel is not None and profile is None:
        prof = _pick_profile("legacy", tree, None)
    cmdline = kernel_cmdline(tree)
    seqs = draw(n, seed, length, prof)
    tagged = [(f"t{i:03d}", s) for i, s in enumerate(seqs)]
    if log:
        log(f"{n} sequences of up to {length} ops (seed {seed}), {sum(len(s) for _, s in seqs)} "
            f"ops in all, on {tree.version}")
    # the time budget bounds the main boot too: what the guest did not reach is left out
    main_timeout = None if time_budget is None else max(60.0, time_budget - (time.monotonic() - t0))
    text, rc, wall, accel = boot_and_run(tree, prof, cmdline, tagged, per_trace_timeout,
                                         main_timeout, keep_log)
    cut = time_budget is not None and rc == -1
    boot, runs = _check_boot(text, 0 if cut else rc, None, tree, accel)
    rep = _new_report(boot, tree, prof, accel, wall, cmdline)
    not_run = 0
    for tag, (name, ops) in tagged:
        run = runs.get(tag)
        if cut and (run is None or "t1" not in run):
            not_run += 1  # the budget ended the boot before (or while) this one ran
            continue
        rep.results.append(judge(name, ops, run, prof))
    gen = GenerateReport(seed, length, rep, not_run=not_run)
    if not_run:
        gen.budget_hit = True
    for i, r in enumerate(rep.results):
        if not r.ok:
            gen.disagreements.append(Disagreement(i, r, mismatch_observable(r.mismatch) or "other",
                                                  seqs[i][1]))
    if gen.disagreements:
        out.mkdir(parents=True, exist_ok=True)
    for d in gen.disagreements:
        d.saved = create_unique(out, f"gen-s{seed}-{d.index}", ".trace",
                                format_trace(d.ops, _header(seed, d, rep, False)).encode())
    if minimize and gen.disagreements:
        _minimize_all(gen, tree, prof, cmdline, per_trace_timeout, min_rounds, t0, time_budget,
                      log)
        for d in gen.disagreements:
            if d.minimized is not None:
                d.minimized_saved = create_unique(
                    out, f"gen-s{seed}-{d.index}", ".min.trace",
                    format_trace(d.minimized, _header(seed, d, rep, True)).encode())
    gen.seconds = time.monotonic() - t0
    return gen


def _minimize_all(gen: GenerateReport, tree, prof: Profile, cmdline: str, per_trace_timeout: int,
                  rounds: int, t0: float, budget: float | None, log) -> None:
    """Shrink every disagreement against the kernel, all candidates of a round in one boot. Only
    a candidate the kernel confirmed becomes `minimized`."""
    cur = {d.index: list(d.ops) for d in gen.disagreements}  # the drawn sequence: confirmed
    # one per signature (observable and op of the first mismatch), the shortest: a campaign
    # finds the same difference many times, and each round's boot runs ~2L candidates per trace
    reps: dict[str, Disagreement] = {}
    for d in gen.disagreements:
        if d.signature not in reps or len(d.ops) < len(reps[d.signature].ops):
            reps[d.signature] = d
    active = sorted(reps.values(), key=lambda d: d.index)
    first, union = True, {}
    while active and rounds > 0:
        if budget is not None and time.monotonic() - t0 > budget:
            gen.budget_hit = True
            return
        tagged, owner = [], []
        for d in active:
            ops = cur[d.index]
            cut = d.ops[:(d.result.op_index or 0) + 1]  # the ops after the mismatch: out
            cands = [(None, cut)] if first and len(cut) < len(ops) else []
            # every chunk the last round could drop on its own, dropped together: one boot
            # confirms what would otherwise take one round per chunk
            if len(union.get(d.index, ())) > 1:
                cands.append((None, union[d.index]))
            for r, c in cands + _chunk_removals(ops):
                tagged.append((f"t{len(tagged):03d}", (f"min-{d.index}", c)))
                owner.append((d, c, r))
        if log:
            log(f"minimising {len(active)} disagreement(s): {len(tagged)} candidates in one boot")
        text, rc, _, accel = boot_and_run(tree, prof, cmdline, tagged, per_trace_timeout)
        _, runs = _check_boot(text, rc, None, tree, accel)
        gen.boots += 1
        best: dict[int, list[O.Op]] = {}
        dropped: dict[int, set[int]] = {}
        for (tag, (name, ops)), (d, c, r) in zip(tagged, owner, strict=False):
            res = judge(name, ops, runs.get(tag), prof)
            if res.ok or mismatch_observable(res.mismatch) != d.observable:
                continue  # agrees, or disagrees about something else
            if r is not None:
                dropped.setdefault(d.index, set()).update(r)
            if d.index not in best or len(c) < len(best[d.index]):
                best[d.index] = c
        still, union = [], {}
        for d in active:
            d.rounds += 1
            b = best.get(d.index)
            if b is not None and len(b) < len(cur[d.index]):
                u = _without(cur[d.index], dropped[d.index]) if d.index in dropped else []
                cur[d.index] = d.minimized = b
                if u and len(u) < len(b):
                    union[d.index] = u
                if len(b) > 1:
                    still.append(d)
        active = still
        first = False
        rounds -= 1


def format_generate(gen: GenerateReport) -> str:
    rep = gen.report
    n = len(rep.results)
    ops = sum(r.ops for r in rep.results)
    guest = sum(r.seconds or 0 for r in rep.results)
    lines = [f"kernel {rep.kernel_version}: {rep.kernel_package or rep.kernel_image}",
             f"  sha256 {rep.sha256 or '-'}, command line {rep.cmdline}",
             f"model {rep.model} under profile {rep.profile}; accel {rep.accel}",
             f"seed {gen.seed}: {n} sequences of up to {gen.length} ops ({ops} ops), one boot: "
             f"qemu wall {rep.wall_seconds:.1f} s, guest {guest:.1f} s in the programs"]
    for d in gen.disagreements:
        r = d.result
        lines.append(f"  DISAGREE sequence {d.index} at op {r.op_index} ({d.signature})"
                     f"  saved {d.saved}")
        lines += ["      " + s for s in (r.mismatch or "").splitlines()[:6]]
        if d.minimized_saved is not None:
            lines.append(f"      minimised to {len(d.minimized)} ops in {d.rounds} round(s): "
                         f"{d.minimized_saved}")
            lines += ["        " + format_op(op) for op in d.minimized[:12]]
        elif d.rounds:
            lines.append(f"      no shorter candidate reproduced it ({d.rounds} round(s))")
    sigs: dict[str, int] = {}
    for d in gen.disagreements:
        sigs[d.signature] = sigs.get(d.signature, 0) + 1
    if sigs:
        lines.append("disagreements by signature: " + ", ".join(
            f"{k} {v}" for k, v in sorted(sigs.items(), key=lambda kv: (-kv[1], kv[0]))))
    if gen.not_run:
        lines.append(f"{gen.not_run} sequence(s) not run: the time budget ended the boot")
    rate = 100.0 * gen.agreed / n if n else 0.0
    lines.append(f"{gen.agreed}/{n} sequences agree ({rate:.1f}%) with the {rep.model} model "
                 f"(profile {rep.profile}) on kernel {rep.kernel_version}; {gen.boots} boot(s), "
                 f"{gen.seconds:.1f} s" + ("; time budget reached" if gen.budget_hit else ""))
    return "\n".join(lines)


def generate_json(gen: GenerateReport) -> str:
    """The report as JSON: the kernel, the agreement, every disagreement with its files."""
    import json
    rep = gen.report
    d = {"kernel": {"version": rep.kernel_version, "package": rep.kernel_package,
                    "sha256": rep.sha256, "cmdline": rep.cmdline},
         "profile": rep.profile, "model": rep.model, "accel": rep.accel, "seed": gen.seed,
         "length": gen.length, "sequences": len(rep.results), "agreed": gen.agreed,
         "boots": gen.boots, "seconds": gen.seconds, "wall_seconds": rep.wall_seconds,
         "budget_hit": gen.budget_hit, "not_run": gen.not_run,
         "disagreements": [{"index": x.index, "op_index": x.result.op_index,
                            "observable": x.observable, "signature": x.signature,
                            "mismatch": x.result.mismatch,
                            "trace": str(x.saved) if x.saved else None,
                            "minimized": str(x.minimized_saved) if x.minimized_saved else None,
                            "minimized_ops": len(x.minimized) if x.minimized else None}
                           for x in gen.disagreements]}
    return json.dumps(d, indent=1) + "\n"
