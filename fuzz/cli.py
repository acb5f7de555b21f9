"""`pmdswap-fuzz` / `python -m fuzz`: run a campaign, reproduce, minimise, show and replay inputs.

Exit status: 0 no divergence, 1 a divergence was found or reproduced, 2 bad usage or bad input.
Bad input is reported as one line, `pmdswap-fuzz: error: <file>:<line>: <problem>`, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from pmdswap_fuzz.models import ops as O

from .artifacts import describe
from .ci_reports import (finding_from_trace, junit_xml, libfuzzer_stats, op_line, sarif_log,
                         write_json)
from .engines import ENGINES, EngineError, Options, run_campaign
from .explain import RULER_ROW, replay_around
from .guard import run_guarded
from .profiles import PROFILE_NAMES
from .loader import BYTES, BadInput, header_bug, load_input
from .minimize import NotReproducible, minimize
from .status import StatusLine, summary
from .trace import TraceError, format_op, format_trace

__all__ = ["main"]

PROG = "pmdswap-fuzz"
EXIT_OK, EXIT_DIVERGENCE, EXIT_USAGE = 0, 1, 2
NOT_INPUTS = (".log", ".md", ".txt", ".json", ".jsonl", ".html")  # `replay DIR` skips these


class UsageError(Exception):
    """Bad usage or bad input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(f"{message} (see {self.prog} --help)")


# ---- bug catalogue ------------------------------------------------------------------------------
def bug_catalogue() -> dict[str, str] | None:
    """models.bugs.BUGS (name -> docstring) if the catalogue exists, else None."""
    try:
        import pmdswap_fuzz.models.bugs as bugs
    except ModuleNotFoundError as e:
        if e.name == "pmdswap_fuzz.models.bugs":
            return None
        raise
    cat = getattr(bugs, "BUGS", None)
    if not isinstance(cat, dict):
        return None
    return {str(k): (v if isinstance(v, str) else (getattr(v, "__doc__", None) or ""))
            for k, v in cat.items()}


def check_bug(name: str | None) -> str | None:
    if name is None or name == "none":
        return None
    cat = bug_catalogue()
    if cat is None:
        raise UsageError(f"unknown bug {name!r}: there is no bug catalogue (models/bugs.py BUGS)")
    if name not in cat:
        raise UsageError(f"unknown bug {name!r} (bugs: {', '.join(sorted(cat)) or 'none'})")
    return name


# ---- helpers ------------------------------------------------------------------------------------
def _load(path: str) -> tuple[list[O.Op], str]:
    try:
        return load_input(path)
    except (TraceError, BadInput) as e:
        raise UsageError(str(e)) from None


def _rulers(ops: list[O.Op], div, bug: str | None, out) -> None:
    """Replay both models through the diverging op and draw each affected (pid, region)."""
    from pmdswap_fuzz.models.observe import describe_vmas, ruler

    st = replay_around(ops, div, bug)
    for name, err in st.errors.items():
        print(f"  ({name} raised {err})", file=out)
    print(f"state after op #{div.op_index} "
          "(H PMD-mapped, p PTE-mapped, S PMD swap entry, s PTE swap entry, . none, blank no VMA):",
          file=out)
    width = max(len(n) for n in st.names)
    for pid, r in st.regions:
        lo = r * O.HPAGE_PMD_NR
        print(f"pid {pid} region {r} (pages {lo}..{lo + O.HPAGE_PMD_NR - 1}):", file=out)
        for name, o in zip(st.names, st.after, strict=False):
            po = o.procs.get(pid)
            if po is None:
                print(f"  {name:<{width}} (no such process)", file=out)
                continue
            line = ruler(po, r)
            for off in range(0, len(line), RULER_ROW):  # rows of 64 pages, with their offset
                print(f"  {name:<{width}} +{off:<3d} |{line[off:off + RULER_ROW]}|", file=out)
        for name, o in zip(st.names, st.after, strict=False):
            if pid in o.procs:
                print(f"  {name:<{width}} vmas: {describe_vmas(o.procs[pid]) or '(none)'}", file=out)


# ---- subcommands --------------------------------------------------------------------------------
MAX_RUN_SECONDS = 7 * 24 * 3600  # a week: beyond that a campaign is a service, restart it
MAX_LENGTH = 1024  # ops per generated sequence: one sequence must fit well inside --time


def _check_writable(d: Path, what: str) -> None:
    """Create d if needed and prove a file can be written there, before any work starts."""
    import tempfile
    try:
        d.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=d, prefix=".write-check-"):
            pass
    except OSError as e:
        raise UsageError(f"{d}: {what} is not writable ({e.strerror or e}); nothing was run, "
                         "so nothing was lost") from None


def cmd_run(args) -> int:
    if not 0 < args.time <= MAX_RUN_SECONDS:  # also refuses nan
        raise UsageError(f"--time must be a number of seconds in (0, {MAX_RUN_SECONDS}], "
                         f"got {args.time}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {args.seed}")
    max_jobs = 4 * (os.cpu_count() or 1)
    if not 1 <= args.jobs <= max_jobs:
        raise UsageError(f"--jobs must be 1..{max_jobs} (4 per CPU; each worker holds both "
                         f"models in memory), got {args.jobs}")
    if not 1 <= args.length <= MAX_LENGTH:
        raise UsageError(f"--length must be 1..{MAX_LENGTH} ops, got {args.length}")
    art = Path(args.artifacts)
    if art.exists() and not art.is_dir():
        raise UsageError(f"{art}: --artifacts is not a directory")
    if args.corpus is not None and Path(args.corpus).exists() and not Path(args.corpus).is_dir():
        raise UsageError(f"{args.corpus}: --corpus is not a directory")
    _check_writable(art, "--artifacts")  # a finding must never be lost for want of a place
    refuse_existing(args.sarif)
    opts = Options(engine=args.engine, time=args.time, seed=args.seed, jobs=args.jobs,
                   corpus=Path(args.corpus) if args.corpus else None, artifacts=art,
                   bug=check_bug(args.bug), length=args.length, profile=args.profile,
                   minimize=not args.no_minimize, seeds=not args.no_seeds)
    def _term(signum, frame):  # SIGTERM (CI timeouts, kill) ends the campaign as Ctrl-C does
        raise KeyboardInterrupt
    old_term = signal.signal(signal.SIGTERM, _term)
    try:
        stats = run_campaign(opts, StatusLine(sys.stderr))
    except EngineError as e:
        raise UsageError(str(e)) from None
    finally:
        signal.signal(signal.SIGTERM, old_term)
    print(summary(stats))
    print("\n".join(libfuzzer_stats(stats)))
    if args.sarif:
        found = [f for p in stats.saved if not str(p).endswith(".min.trace")
                 and (f := finding_from_trace(Path(p))) is not None]
        write_json(args.sarif, sarif_log(found, _version(), base=Path.cwd()))
        print(f"sarif: {args.sarif} ({len(found)} results)")
    return EXIT_DIVERGENCE if stats.divergences else EXIT_OK


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(PROG)
    except PackageNotFoundError:
        return "0+unknown"


def refuse_existing(*paths: str | None) -> None:
    """A report is never written over a file the user has (checked before any work)."""
    for p in paths:
        if p is not None and Path(p).exists():
            raise UsageError(f"{p}: exists; reports are not written over files (pick a new name)")


def cmd_repro(args) -> int:
    ops, kind = _load(args.file)
    bug = check_bug(args.bug)
    if args.bug is None:
        named = header_bug(args.file)
        if named is not None:
            bug = check_bug(named)
            print(f"{args.file}: its header names bug {named}; injecting it "
                  "(--bug none runs the correct models)", file=sys.stderr)
    res = run_guarded(ops, bug)
    div = res.divergence
    notes = {div.op_index: "<- diverges here"} if div else None
    comments = [f"{args.file} ({kind}, {len(ops)} ops)"]
    print(format_trace(ops, comments=comments, notes=notes), end="")
    if div is None:
        print(f"no divergence: {len(ops)} ops ran on both models")
        return EXIT_OK
    print(f"DIVERGENCE {div.signature()}")
    print(f"  rule:    {div.rule}")
    print(f"  op:      #{div.op_index} {format_op(div.op)}")
    print(f"  pid:     {div.pid if div.pid is not None else '-'}")
    pages = ", ".join(str(p) for p in div.pages) if div.pages else "-"
    print(f"  pages:   {pages}")
    print(f"  detail:  {div.detail}")
    print(f"  legacy:  {div.legacy}")
    print(f"  pmd:     {div.pmd}")
    if div.repr_kind:
        print(f"  repr:    {div.repr_kind}")
    _rulers(ops, div, bug, sys.stdout)
    return EXIT_DIVERGENCE


def cmd_minimize(args) -> int:
    bug = check_bug(args.bug)
    out = Path(args.output)
    if out.exists() or out.is_symlink():
        raise UsageError(f"{out}: output file exists, refusing to overwrite it")
    if not out.parent.is_dir():
        raise UsageError(f"{out}: directory {out.parent} does not exist")
    ops, kind = _load(args.file)
    res = run_guarded(ops, bug)
    if res.divergence is None:
        print(f"{args.file}: no divergence, nothing to minimise", file=sys.stderr)
        return EXIT_OK
    div = res.divergence
    try:
        small = minimize(ops, div.signature(), bug)
    except NotReproducible as e:
        raise UsageError(f"{args.file}: {e}") from None
    final = run_guarded(small, bug).divergence
    text = format_trace(small, comments=[f"minimised from {args.file} ({kind}): "
                                         f"{len(ops)} -> {len(small)} ops"] + describe(final),
                        notes={final.op_index: "<- diverges here"})
    try:
        with open(out, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        raise UsageError(f"{out}: output file exists, refusing to overwrite it") from None
    except OSError as e:
        raise UsageError(f"{out}: cannot write: {e.strerror or e}") from None
    print(f"{out}: {len(ops)} -> {len(small)} ops, signature {div.signature()}")
    return EXIT_DIVERGENCE


def cmd_show(args) -> int:
    ops, kind = _load(args.file)
    comments = [f"{args.file}: {kind}" + (" decoded by fuzz.decode" if kind == BYTES else "")
                + f", {len(ops)} ops"]
    print(format_trace(ops, comments=comments), end="")
    return EXIT_OK


def cmd_replay(args) -> int:
    d = Path(args.dir)
    if not d.exists():
        raise UsageError(f"{d}: no such directory")
    if not d.is_dir():
        raise UsageError(f"{d}: not a directory")
    bug = check_bug(args.bug)
    refuse_existing(args.sarif, args.junit)
    entries = sorted(d.iterdir())
    files = [p for p in entries if p.is_file() and not p.name.startswith(".")
             and p.suffix not in NOT_INPUTS]
    skipped = [p.name + ("/" if p.is_dir() else "") for p in entries if p not in files]
    shown = ", ".join(skipped[:8]) + (f" and {len(skipped) - 8} more" if len(skipped) > 8 else "")
    if not files:
        raise UsageError(f"{d}: no inputs to replay" + (f" (skipped: {shown})" if skipped
                                                           else " (empty directory)"))
    if skipped:
        print(f"{d}: skipped {len(skipped)}: {shown} (directories, hidden files, "
              f"{' '.join(NOT_INPUTS)})", file=sys.stderr)
    rows, diverged, bad = [], 0, 0
    cases, found = [], []  # JUnit test cases, SARIF findings
    for p in files:
        t0 = time.monotonic()
        try:
            ops, kind = load_input(p)
        except (TraceError, BadInput) as e:
            rows.append((p.name, "-", "-", f"bad input: {e}"))
            cases.append((p.name, time.monotonic() - t0, None, f"bad input: {e}"))
            bad += 1
            continue
        res = run_guarded(ops, bug)
        div = res.divergence
        if div is None:
            result = "ok"
            cases.append((p.name, time.monotonic() - t0, None, None))
        else:
            diverged += 1
            result = f"DIVERGES {div.signature()} at op {div.op_index}"
            cases.append((p.name, time.monotonic() - t0, f"{result}\n{div.describe()}", None))
            found.append({"path": p, "signature": div.signature(), "rule": div.rule,
                          "op": f"op #{div.op_index}: {format_op(div.op)}",
                          "detail": div.detail,
                          "line": op_line(p.read_text(errors="replace"), div.op_index)
                          if kind != BYTES else 1})
        rows.append((p.name, kind, str(len(ops)), result))
    w = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(("file", "kind", "ops"))]
    print(f"{'file':<{w[0]}}  {'kind':<{w[1]}}  {'ops':>{w[2]}}  result")
    for name, kind, n, result in rows:
        print(f"{name:<{w[0]}}  {kind:<{w[1]}}  {n:>{w[2]}}  {result}")
    print(f"{len(rows)} inputs: {len(rows) - diverged - bad} ok, {diverged} diverge, {bad} bad")
    if args.junit:
        Path(args.junit).write_text(junit_xml(f"replay {d}", cases))
    if args.sarif:
        write_json(args.sarif, sarif_log(found, _version(), base=Path.cwd()))
    if diverged:
        return EXIT_DIVERGENCE
    return EXIT_USAGE if bad else EXIT_OK


def cmd_report(args) -> int:
    from .artifacts import create_unique
    from .html_report import render_report
    d = Path(args.dir)
    if not d.is_dir():
        raise UsageError(f"{d}: not a directory (give a campaign's --artifacts directory)")
    refuse_existing(args.output)
    if args.output is None:
        _check_writable(d, "the artifacts directory")
    page, campaigns, findings = render_report(d)
    if not campaigns and not findings:
        raise UsageError(f"{d}: no campaign statistics (stats-*.jsonl) and no findings (*.trace): "
                         "not a campaign's artifacts directory")
    if args.output is None:
        out = create_unique(d, "report", ".html", page.encode())
    else:
        try:
            with open(args.output, "x", encoding="utf-8") as f:
                f.write(page)
        except OSError as e:
            raise UsageError(f"{args.output}: cannot write ({e.strerror or e})") from None
        out = Path(args.output)
    print(f"report: {out} ({campaigns} campaigns, {findings} findings)")
    return EXIT_OK


def cmd_bugs(args) -> int:
    cat = bug_catalogue()
    if not cat:
        print("none")
        return EXIT_OK
    try:
        from pmdswap_fuzz.models.bugs import BLIND_SPOTS
    except ImportError:
        BLIND_SPOTS = frozenset()
    w = max(len(n) for n in cat)
    print(f"{'bug':<{w}}  {'status':<10}  what it gets wrong (first sentence)")
    for name in sorted(cat):
        status = "blind spot" if name in BLIND_SPOTS else "findable"
        print(f"{name:<{w}}  {status:<10}  {_first_sentence(cat[name])}")
    print(f"{len(cat)} bugs, {sum(n in BLIND_SPOTS for n in cat)} blind spots "
          "(a blind spot: the oracle cannot see the mistake)")
    return EXIT_OK


def _first_sentence(doc: str) -> str:
    """The docstring's first sentence, whole: up to '. ' or the first blank line."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    cut = para.find(". ")
    while cut > 0 and para[cut - 1] == ".":  # an ellipsis ends no sentence
        cut = para.find(". ", cut + 2)
    return para if cut < 0 else para[:cut + 1]


def cmd_merge_corpus(args) -> int:
    """libFuzzer -merge=1 into a fresh directory, then swap it in; the old corpus is kept as
    CORPUS.old until the merge has succeeded, so nothing is lost on failure."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    from .engines import ATHERIS_TARGET, REPO

    corpus = Path(args.corpus)
    if not corpus.is_dir():
        raise UsageError(f"{corpus}: not a directory")
    merged, old = corpus.with_name(corpus.name + ".merged"), corpus.with_name(corpus.name + ".old")
    for p in (merged, old):
        if p.exists():
            raise UsageError(f"{p}: already exists (left by an earlier merge?); move it away first")
    merged.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    r = subprocess.run([sys.executable, str(ATHERIS_TARGET), "-merge=1", str(merged), str(corpus)],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        shutil.rmtree(merged)
        print(r.stdout[-2000:], file=sys.stderr)
        raise UsageError(f"{corpus}: libFuzzer merge failed (exit {r.returncode}); corpus unchanged")
    before = sum(1 for _ in corpus.iterdir())
    corpus.rename(old)
    merged.rename(corpus)
    shutil.rmtree(old)
    print(f"{corpus}: {before} inputs -> {sum(1 for _ in corpus.iterdir())} after merge")
    return EXIT_OK


def cmd_bench(args) -> int:
    import importlib

    try:
        bench = importlib.import_module(f"{__package__}.bench")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.bench":
            raise
        raise UsageError("bench: not available yet (fuzz/bench.py is not there)") from None
    return int(bench.main(args.rest) or 0)


# ---- parser -------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Differential fuzzer: legacy PTE-split THP swap vs PMD-level "
                "swap entries. Exit 0: no divergence, 1: divergence, 2: bad usage or input.")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("run", help="run a fuzzing campaign")
    r.add_argument("--engine", choices=tuple(ENGINES), default="random")
    r.add_argument("--time", type=float, default=60.0, metavar="SECONDS",
                   help="campaign length (default 60)")
    r.add_argument("--seed", type=int, default=None, help="seed (default: random, printed)")
    r.add_argument("--jobs", type=int, default=1, help="parallel workers (random, atheris)")
    r.add_argument("--corpus", default=None, metavar="DIR", help="atheris corpus directory "
                   "(default ARTIFACTS/corpus; *.trace files in it are encoded as seeds)")
    r.add_argument("--artifacts", default="artifacts", metavar="DIR",
                   help="where divergences are saved (default ./artifacts)")
    r.add_argument("--bug", default=None, metavar="NAME", help="inject a catalogue bug (see `bugs`)")
    r.add_argument("--length", type=int, default=32, metavar="N",
                   help="ops per generated sequence (random engine, default 32)")
    r.add_argument("--profile", choices=PROFILE_NAMES, default="ci",
                   help="Hypothesis settings profile (hypothesis engine, default ci)")
    r.add_argument("--no-minimize", action="store_true", help="do not minimise findings")
    r.add_argument("--no-seeds", action="store_true",
                   help="atheris: do not seed the corpus from corpus/seeds and corpus/regressions")
    r.add_argument("--sarif", default=None, metavar="FILE",
                   help="also write SARIF 2.1.0: each saved divergence a result at its trace's "
                        "diverging op (must not exist)")
    r.set_defaults(fn=cmd_run)

    from .kernelcheck import add_cli_commands  # export-c and kernel-check
    add_cli_commands(sub, UsageError)

    r = sub.add_parser("repro", help="replay one input and explain its first divergence")
    r.add_argument("file", metavar="FILE")
    r.add_argument("--bug", default=None, metavar="NAME",
                   help="inject a catalogue bug (default: the one a `# bug:` header names; "
                        "none: the correct models)")
    r.set_defaults(fn=cmd_repro)

    r = sub.add_parser("minimize", help="minimise a diverging input into a new trace")
    r.add_argument("file", metavar="FILE")
    r.add_argument("-o", "--output", required=True, metavar="OUT", help="must not exist")
    r.add_argument("--bug", default=None, metavar="NAME")
    r.set_defaults(fn=cmd_minimize)

    r = sub.add_parser("show", help="print an input (trace or raw fuzzer bytes) as a text trace")
    r.add_argument("file", metavar="FILE")
    r.set_defaults(fn=cmd_show)

    r = sub.add_parser("replay", help="replay every trace and raw input of a directory")
    r.add_argument("dir", metavar="DIR")
    r.add_argument("--junit", default=None, metavar="FILE",
                   help="also write JUnit XML: each input a test case (must not exist)")
    r.add_argument("--sarif", default=None, metavar="FILE",
                   help="also write SARIF 2.1.0: each divergence a result (must not exist)")
    r.add_argument("--bug", default=None, metavar="NAME")
    r.set_defaults(fn=cmd_replay)

    r = sub.add_parser("report", help="write an HTML page for a campaign's artifacts directory: "
                       "executions and coverage over time, and each finding's rulers before and "
                       "after its diverging op")
    r.add_argument("dir", metavar="DIR")
    r.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="must not exist (default: DIR/report.html, or report-1.html... beside "
                   "an earlier one)")
    r.set_defaults(fn=cmd_report)

    r = sub.add_parser("bugs", help="list the bug catalogue")
    r.set_defaults(fn=cmd_bugs)

    r = sub.add_parser("merge-corpus", help="merge and prune a libFuzzer corpus directory in place "
                       "(libFuzzer -merge=1: keeps the inputs that add coverage)")
    r.add_argument("corpus")
    r.set_defaults(fn=cmd_merge_corpus)

    r = sub.add_parser("bench", help="benchmarks (fuzz/bench.py)")
    r.add_argument("rest", nargs=argparse.REMAINDER)
    r.set_defaults(fn=cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["bench"]:  # bench has its own option parser (fuzz/bench.py)
            from . import bench
            return int(bench.main(argv[1:]) or 0)
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # --help (0) and argparse internals
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
