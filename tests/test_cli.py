"""fuzz/cli.py end to end through `main([...])`: exit codes, one-line errors, repro and minimize on a
deliberately broken model."""

from __future__ import annotations

import numpy as np
import pytest

from pmdswap_fuzz.fuzz import runner
from pmdswap_fuzz.fuzz.cli import main
from pmdswap_fuzz.fuzz.decode import encode
from pmdswap_fuzz.fuzz.loader import load_input
from pmdswap_fuzz.fuzz.trace import format_trace, parse_trace
from pmdswap_fuzz.models import ops as O
from pmdswap_fuzz.models.legacy import LegacyKernel
from pmdswap_fuzz.models.mm import PTE_SWAP

P = O.HPAGE_PMD_NR

# No swap path involved: both current models agree on it.
BENIGN = [O.Mmap(0, 0, 2 * P), O.Write(0, 0, P + 7, value=3), O.Fault(0, P + 100),
          O.Munmap(0, 10, 20), O.Fork(0), O.Write(1, 0, 4, value=9)]

# Leads to fork() copying PTE swap entries (legacy splits the THP at pageout), with noise around it.
TO_FORK_WITH_SWAP_ENTRIES = [
    O.Mmap(0, 0, 2 * P), O.Mprotect(0, 3 * P, 5), O.Write(0, 0, 2 * P, value=5),
    O.ClearRefs(0), O.Fault(0, 17), O.Mmap(0, 3 * P, 16, hugepage=False), O.Write(0, 3 * P, 16),
    O.Pageout(0, 0, P), O.Evict(), O.Dontneed(0, 3 * P + 2, 2), O.Fork(0), O.Fault(1, 3),
]


class ForkKeepsParentExclusive(LegacyKernel):
    """Deliberate bug: copy_pte_range() forgets to clear the parent's swap-entry exclusive bit."""

    name = "broken"

    def copy_pte_range(self, dst, src, a, b, dst_vma):
        swp = np.flatnonzero(src.pte_kind[a:b] == PTE_SWAP) + a
        saved = src.pte_swp_excl[swp].copy()
        super().copy_pte_range(dst, src, a, b, dst_vma)
        src.pte_swp_excl[swp] = saved


@pytest.fixture
def broken_model(monkeypatch):
    monkeypatch.setattr(runner, "make_models", lambda bug=None: (LegacyKernel(),
                                                                 ForkKeepsParentExclusive()))


def write_trace(path, ops):
    path.write_text(format_trace(ops))
    return path


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pmdswap-fuzz: error: ")
    return lines[0]


# ---- show ---------------------------------------------------------------------------------------
def test_show_trace(tmp_path, capsys):
    f = write_trace(tmp_path / "a.trace", BENIGN)
    assert main(["show", str(f)]) == 0
    out = capsys.readouterr().out
    assert parse_trace(out) == BENIGN


def test_show_raw_bytes(tmp_path, capsys):
    f = tmp_path / "crash-123"
    f.write_bytes(encode(BENIGN))
    assert main(["show", str(f)]) == 0
    out = capsys.readouterr().out
    assert "bytes" in out.splitlines()[0]
    assert parse_trace(out) == BENIGN


def test_text_with_header_is_a_trace_whatever_its_name(tmp_path):
    f = tmp_path / "noext"
    f.write_text(format_trace(BENIGN))
    assert load_input(f) == (BENIGN, "trace")


# ---- repro --------------------------------------------------------------------------------------
def test_repro_benign_exits_0(tmp_path, capsys):
    f = write_trace(tmp_path / "ok.trace", BENIGN)
    assert main(["repro", str(f)]) == 0
    assert "no divergence" in capsys.readouterr().out


def test_repro_broken_model_exits_1(tmp_path, capsys, broken_model):
    f = write_trace(tmp_path / "bad.trace", TO_FORK_WITH_SWAP_ENTRIES)
    assert main(["repro", str(f)]) == 1
    out = capsys.readouterr().out
    assert "DIVERGENCE invariant:" in out
    assert "fork pid=0" in out and "<- diverges here" in out
    rulers = [line for line in out.splitlines() if line.strip().startswith(("legacy ", "broken "))
              and "|" in line]
    rows = [line.split("|")[1] for line in rulers]
    assert rows and all(len(row) == 64 for row in rows)  # a region in rows of 64 pages
    assert len(rows) % (P // 64) == 0
    assert any("s" in row for row in rows)  # PTE swap entries drawn


# ---- minimize -----------------------------------------------------------------------------------
def test_minimize_broken_model(tmp_path, capsys, broken_model):
    f = write_trace(tmp_path / "bad.trace", TO_FORK_WITH_SWAP_ENTRIES)
    out = tmp_path / "bad.min.trace"
    before = runner.run_trace(TO_FORK_WITH_SWAP_ENTRIES).divergence
    assert before is not None
    assert main(["minimize", str(f), "-o", str(out)]) == 1
    small, kind = load_input(out)
    assert kind == "trace" and len(small) < len(TO_FORK_WITH_SWAP_ENTRIES)
    after = runner.run_trace(small).divergence
    assert after is not None and after.signature() == before.signature()
    assert isinstance(small[-1], O.Fork)


def test_minimize_refuses_existing_output(tmp_path, capsys, broken_model):
    f = write_trace(tmp_path / "bad.trace", TO_FORK_WITH_SWAP_ENTRIES)
    out = tmp_path / "exists.trace"
    out.write_text("keep me")
    assert main(["minimize", str(f), "-o", str(out)]) == 2
    assert "exists" in one_line_error(capsys)
    assert out.read_text() == "keep me"


# ---- replay and run -----------------------------------------------------------------------------
def test_replay_dir(tmp_path, capsys, broken_model):
    write_trace(tmp_path / "ok.trace", BENIGN)
    (tmp_path / "raw").write_bytes(encode(BENIGN))
    assert main(["replay", str(tmp_path)]) == 0
    write_trace(tmp_path / "bad.trace", TO_FORK_WITH_SWAP_ENTRIES)
    assert main(["replay", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "DIVERGES" in out and "3 inputs" in out


def test_run_random_finds_and_minimises(tmp_path, capsys, broken_model):
    art = tmp_path / "art"
    rc = main(["run", "--engine", "random", "--time", "3", "--seed", "1", "--artifacts", str(art)])
    captured = capsys.readouterr()
    assert rc == 1, captured.err
    traces = sorted(p.name for p in art.glob("*.trace"))
    assert any(n.endswith(".min.trace") for n in traces)
    assert "coverage" in captured.out
    for p in art.glob("*.trace"):
        load_input(p)  # every artifact is a valid trace


# ---- bad input: one line on stderr, exit 2 ----------------------------------------------------------
BAD_TRACES = {
    "unknown_op": "pmdswap-trace 1\nmmap pid=0 start=0 npages=1\nfrob pid=0\n",
    "bad_number": "pmdswap-trace 1\nmmap pid=0 start=x npages=1\n",
    "wrong_version": "pmdswap-trace 9\nevict\n",
    "no_header": "evict\n",
    "truncated": "pmdswap-trace 1\nmmap pid=0 start=0 npa",
    "out_of_range": "pmdswap-trace 1\nfork pid=7\n",
}


@pytest.mark.parametrize("cmd", ["show", "repro", "minimize"])
@pytest.mark.parametrize("name", sorted(BAD_TRACES))
def test_malformed_trace_exit_2(tmp_path, capsys, cmd, name):
    f = tmp_path / f"{name}.trace"
    f.write_text(BAD_TRACES[name])
    argv = [cmd, str(f)] + (["-o", str(tmp_path / "out.trace")] if cmd == "minimize" else [])
    assert main(argv) == 2
    line = one_line_error(capsys)
    assert f"{f}:" in line
    assert not (tmp_path / "out.trace").exists()


def test_binary_garbage_in_trace_file(tmp_path, capsys):
    f = tmp_path / "garbage.trace"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    assert main(["repro", str(f)]) == 2
    line = one_line_error(capsys)
    assert f"{f}:1:" in line or f"{f}:2:" in line


@pytest.mark.parametrize("argv,fragment", [
    (["show", "{tmp}/missing.trace"], "no such file"),
    (["repro", "{tmp}"], "directory"),
    (["replay", "{tmp}/nodir"], "no such directory"),
    (["repro", "--bug", "no-such-bug", "{tmp}/x.trace"], "unknown bug"),
    (["run", "--bug", "no-such-bug", "--time", "1"], "unknown bug"),
    (["run", "--time", "-1"], "--time"),
    (["run", "--engine", "nope"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
    ([], "required"),
])
def test_usage_errors_exit_2(tmp_path, capsys, argv, fragment):
    write_trace(tmp_path / "x.trace", BENIGN)
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert fragment in one_line_error(capsys)


def test_bugs_lists_catalogue_or_none(capsys):
    assert main(["bugs"]) == 0
    assert capsys.readouterr().out.strip()


# ---- bench --------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [[], ["--bugs"]])
def test_bench_refuses_existing_json_before_running(tmp_path, capsys, extra):
    out = tmp_path / "figures.json"
    out.write_text("keep me")
    assert main(["bench", *extra, "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "already exists" in err and str(out) in err
    assert out.read_text() == "keep me"
    assert main(["bench", *extra, "--json", str(tmp_path / "missing" / "x.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--execs", "0"], ["--bugs", "--seeds", "0"], ["--bugs", "--budget", "-3"]])
def test_bench_refuses_empty_measurements(capsys, args):
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "must be at least 1" in err


# ---- the user's contract (issue 14), run as a user would: a subprocess, exit code, one line ----
_REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
_TRACE = _REPO / "corpus/realkernel/linux73-cold-splits-partly-covered-thp.trace"


def _cli(*argv, timeout=60):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "fuzz", *map(str, argv)], cwd=_REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("argv,fragment", [
    (["run", "--seed", "-1", "--time", "1"], "--seed must be a non-negative integer"),
    (["run", "--time", "inf"], "--time must be a number of seconds"),
    (["run", "--time", "nan"], "--time must be a number of seconds"),
    (["run", "--jobs", "1000", "--time", "5"], "--jobs must be 1.."),
    (["run", "--length", "1000000", "--time", "5"], "--length must be 1..1024"),
    (["kernel-check", "--timeout", "-1", str(_TRACE)], "--timeout must be a positive number"),
    (["kernel-check", "--generate", "2", "--seed", "1", "--time-budget", "nan"],
     "--time-budget must be a positive number"),
])
def test_bad_values_are_refused_before_any_work(argv, fragment):
    r = _cli(*argv)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and fragment in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_export_c_writes_a_new_file_and_never_overwrites(tmp_path):
    out = tmp_path / "repro.c"
    r = _cli("export-c", _TRACE, "-o", out)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "int main" in out.read_text()
    mine = tmp_path / "mine.c"
    mine.write_text("/* the user's own file */\n")
    r = _cli("export-c", _TRACE, "-o", mine)
    assert r.returncode == 2 and "exists" in r.stderr and "Traceback" not in r.stderr
    assert mine.read_text() == "/* the user's own file */\n"


def test_replay_of_a_directory_without_inputs_is_refused(tmp_path):
    (tmp_path / "notes.md").write_text("not an input\n")
    (tmp_path / "sub").mkdir()
    r = _cli("replay", tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no inputs to replay" in r.stderr and "notes.md" in r.stderr and "sub/" in r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _cli("replay", empty)
    assert r.returncode == 2 and "empty directory" in r.stderr


def test_repro_of_a_regression_uses_its_bug_header_unless_told_otherwise():
    trace = _REPO / "corpus/regressions/change_huge_pmd_ignores_uffd_wp.trace"
    r = _cli("repro", trace)
    assert r.returncode == 1 and "DIVERGENCE" in r.stdout
    assert "header names bug change_huge_pmd_ignores_uffd_wp" in r.stderr
    r = _cli("repro", "--bug", "none", trace)
    assert r.returncode == 0 and "no divergence" in r.stdout


def test_bugs_lists_whole_first_sentences_with_a_status():
    from pmdswap_fuzz.models.bugs import BLIND_SPOTS, BUGS
    r = _cli("bugs")
    assert r.returncode == 0
    rows = [line for line in r.stdout.splitlines()[1:-1]]
    assert len(rows) == len(BUGS)
    for line in rows:
        name, status, text = line.split(None, 2) if " blind spot " not in line else \
            (line.split()[0], "blind spot", line.split("blind spot", 1)[1].strip())
        assert status == ("blind spot" if name in BLIND_SPOTS else "findable"), line
        assert text.endswith(".") and not text.endswith("..."), line
    assert r.stdout.splitlines()[-1].startswith(f"{len(BUGS)} bugs, {len(BLIND_SPOTS)} blind spots")


def test_text_without_the_header_is_not_run_as_fuzzer_bytes(tmp_path):
    notes = tmp_path / "steps.txt2"
    notes.write_text("mmap pid=0 start=0 npages=512 hugepage=1\nwrite pid=0 start=0 npages=5\n")
    r = _cli("repro", notes)
    assert r.returncode == 2 and "text without the 'pmdswap-trace 1' header" in r.stderr
    raw = tmp_path / "crash-1"
    raw.write_bytes(bytes(range(256)) * 2)  # what libFuzzer writes: binary
    assert _cli("repro", raw).returncode in (0, 1)


def test_sigterm_ends_a_campaign_with_its_summary_and_findings(tmp_path):
    import signal
    import subprocess
    import sys
    import time
    art = tmp_path / "art"
    p = subprocess.Popen([sys.executable, "-m", "fuzz", "run", "--time", "120", "--seed", "3",
                          "--bug", "fork_counts_anonpages", "--no-minimize", "--artifacts", str(art)],
                         cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(art.glob("*.trace")):
        time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1, err[-2000:]  # the divergence it found, as after Ctrl-C
    assert "Traceback" not in err and "interrupted" in out
    assert any(art.glob("*.trace"))


@pytest.mark.parametrize("engine", ["random", "atheris"])
def test_unwritable_artifacts_are_refused_before_the_campaign(tmp_path, engine):
    # the tests may run as root, where permission bits do not stop a write: /proc refuses anyone
    r = _cli("run", "--engine", engine, "--time", "5", "--artifacts", "/proc/self/pmdswap-art")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--artifacts is not writable" in r.stderr and "nothing was run" in r.stderr


def test_atheris_stops_near_its_time_even_while_libfuzzer_replays_its_corpus(tmp_path):
    """Before the watchdog, `--engine atheris --bug X --time 10` took 146 s: libFuzzer's fork
    mode replays the whole starting corpus (restarting after each crashing seed) before its
    -max_total_time counts. The bound here is loose on purpose (a shared, noisy machine): the
    point is "near --time", not a speed figure."""
    import time
    t0 = time.monotonic()
    r = _cli("run", "--engine", "atheris", "--time", "3", "--seed", "1", "--bug",
             "fork_counts_anonpages", "--artifacts", tmp_path / "art", timeout=120)
    took = time.monotonic() - t0
    assert r.returncode in (0, 1), r.stderr[-2000:]  # 3 s may or may not find it
    assert "Traceback" not in r.stderr
    assert took < 40, f"--time 3 took {took:.0f} s"


def test_a_trace_past_the_length_bound_is_refused_at_its_line(tmp_path):
    from pmdswap_fuzz.fuzz.trace import MAX_TRACE_OPS
    long = tmp_path / "long.trace"
    long.write_text("pmdswap-trace 1\n" + "fault pid=0 page=1 write=0\n" * (MAX_TRACE_OPS + 1))
    r = _cli("repro", long)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"long.trace:{MAX_TRACE_OPS + 2}: more than {MAX_TRACE_OPS} ops" in r.stderr


def test_rulers_fit_a_terminal_and_show_the_forked_child():
    r = _cli("repro", _REPO / "corpus/regressions/fork_counts_anonpages.trace")
    assert r.returncode == 1
    rulers = r.stdout.split("state after op", 1)[1]
    assert "pid 0 region 3" in rulers and "pid 1 region 3" in rulers  # parent and child
    assert max(len(line) for line in rulers.splitlines()) <= 120
    assert "+448 |" in rulers and "None" not in r.stdout


def test_sarif_and_junit_reports_for_ci(tmp_path):
    import json
    import xml.etree.ElementTree as ET

    import pydantic
    import sarif_pydantic
    art, sarif = tmp_path / "art", tmp_path / "run.sarif"
    r = _cli("run", "--time", "8", "--seed", "3", "--bug", "fork_counts_anonpages",
             "--no-minimize", "--artifacts", art, "--sarif", sarif)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "stat::number_of_executed_units:" in r.stdout and "stat::peak_rss_mb:" in r.stdout
    doc = json.loads(sarif.read_text())
    log = sarif_pydantic.Sarif.model_validate(doc)  # the library's model of SARIF 2.1.0
    results = log.runs[0].results
    assert results and all(res.level.value == "error" for res in results)
    first = doc["runs"][0]["results"][0]
    trace = tmp_path / first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    line = trace.read_text().splitlines()[first["locations"][0]["physicalLocation"]["region"]
                                           ["startLine"] - 1]
    assert line.startswith("fork ")  # located at the diverging op of the saved trace
    del doc["runs"][0]["results"][0]["message"]  # and the model does check: no message, no SARIF
    with pytest.raises(pydantic.ValidationError):
        sarif_pydantic.Sarif.model_validate(doc)

    junit = tmp_path / "replay.xml"
    r = _cli("replay", _REPO / "corpus/regressions", "--junit", junit, "--sarif",
             tmp_path / "replay.sarif")
    assert r.returncode == 0, r.stderr[-2000:]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert int(suite.get("tests")) == len(suite.findall("testcase")) > 40
    assert suite.get("failures") == "0" and not suite.findall("testcase/failure")
    assert sarif_pydantic.Sarif.model_validate_json((tmp_path / "replay.sarif").read_text())
    r = _cli("replay", _REPO / "corpus/regressions", "--junit", junit)  # never over a file
    assert r.returncode == 2 and "exists" in r.stderr
