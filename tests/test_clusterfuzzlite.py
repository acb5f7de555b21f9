"""The ClusterFuzzLite integration (.clusterfuzzlite/, .github/workflows/cflite_*.yml), tested
without Docker: the configuration files are read for what ClusterFuzzLite needs from them, and
build.sh runs as the python builder would run it (from $SRC/pmdswap-fuzz, with $SRC, $OUT and $WORK
set, here temporary directories) with a stand-in for the builder's `compile_python_fuzzer` that does
what it does minus PyInstaller. The packaged target then runs a bounded number of inputs over the
seed corpus build.sh zipped: with a catalogue bug injected it crashes on the divergence, without one
it finds nothing.

Not tested here (no Docker): the image build, PyInstaller's bundle, the actions themselves.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from pmdswap_fuzz.fuzz.decode import MAX_OPS
from pmdswap_fuzz.fuzz.runner import run_trace
from pmdswap_fuzz.fuzz.trace import parse_trace_bytes

try:  # what the harness turns libFuzzer's bytes into (checked against its source below)
    from pmdswap_fuzz.fuzz.fuzzer_input import ops_from_input
except ImportError:  # the harness of the flat decoder only
    from pmdswap_fuzz.fuzz.decode import decode as ops_from_input

REPO = Path(__file__).resolve().parent.parent
CFLITE = REPO / ".clusterfuzzlite"
WORKFLOWS = REPO / ".github" / "workflows"
HARNESS = REPO / "fuzz" / "atheris_target.py"
TARGET = "pmdswap_fuzzer"
BUILD_ACTION = "google/clusterfuzzlite/actions/build_fuzzers@v1"
RUN_ACTION = "google/clusterfuzzlite/actions/run_fuzzers@v1"
STORAGE = "${{ secrets.CFLITE_STORAGE_REPO }}"
SARIF = "cifuzz-sarif/results.sarif"  # where run_fuzzers writes it with output-sarif: true

# A bug 94 of the 112 seeds show as they are (every THP pageout miscounts), found while libFuzzer
# reads the seed corpus (~3 s); and one no seed shows, found by mutation (libFuzzer -seed=1, its
# default flags: at run ~120, ~10 mutations after the seeds, ~4-6 s on a 2-CPU machine).
BUG_FROM_SEEDS = "swapout_wrong_counters"
BUG_BY_MUTATION = "mincore_swap_pmd_resident"


# ---- a YAML subset reader ------------------------------------------------------------------------
# PyYAML is not a dependency and is not added for this: the files read here are written in a block
# subset (mappings, sequences, scalars, comments) that this reader parses, and it refuses anything
# else (flow collections, block scalars, anchors, tabs) rather than misread it.
_KEY = re.compile(r"^([A-Za-z_][\w.-]*):(?:\s+(.*))?$")


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text: str):
    if text[:1] in ("'", '"'):
        if len(text) < 2 or text[-1] != text[0]:
            raise ValueError(f"unterminated quoted scalar: {text!r}")
        return text[1:-1]
    if text[:1] in "[{|>&*!%@`":
        raise ValueError(f"outside the YAML subset this test reads: {text!r}")
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def _block(lines: list, i: int, indent: int):
    is_seq = lines[i][1] == "-" or lines[i][1].startswith("- ")
    node: list | dict = [] if is_seq else {}
    while i < len(lines):
        ind, text = lines[i]
        if ind < indent:
            break
        if ind > indent:
            raise ValueError(f"unexpected indentation: {text!r}")
        if is_seq:
            if not (text == "-" or text.startswith("- ")):
                raise ValueError(f"mapping entry in a sequence: {text!r}")
            item = text[1:].strip()
            if not item:
                if i + 1 >= len(lines) or lines[i + 1][0] <= indent:
                    raise ValueError("empty sequence item")
                value, i = _block(lines, i + 1, lines[i + 1][0])
            elif _KEY.match(item):  # "- key: value": a mapping indented past the dash
                lines[i] = (indent + 2, item)
                value, i = _block(lines, i, indent + 2)
            else:
                value, i = _scalar(item), i + 1
            node.append(value)
        else:
            m = _KEY.match(text)
            if not m:
                raise ValueError(f"not a mapping entry: {text!r}")
            key, rest = m.group(1), m.group(2)
            if key in node:
                raise ValueError(f"duplicate key {key!r}")
            if rest:
                node[key], i = _scalar(rest.strip()), i + 1
            elif i + 1 < len(lines) and lines[i + 1][0] > indent:
                node[key], i = _block(lines, i + 1, lines[i + 1][0])
            else:
                node[key], i = None, i + 1
    return node, i


def load_yaml(text: str):
    lines = []
    for raw in text.splitlines():
        if "\t" in raw:
            raise ValueError("tab in YAML")
        line = _strip_comment(raw).rstrip()
        if line.strip() and line.strip() != "---":
            lines.append((len(line) - len(line.lstrip(" ")), line.strip()))
    if not lines:
        return None
    node, i = _block(lines, 0, lines[0][0])
    if i != len(lines):
        raise ValueError(f"unparsed from line {i}: {lines[i][1]!r}")
    return node


def test_yaml_reader_parses_nesting_and_refuses_what_it_cannot_read():
    doc = load_yaml("a: 1\nb:\n  - x: 'y # z'  # comment\n    w: true\n  - plain ${{ v }}\nc:\n")
    assert doc == {"a": 1, "b": [{"x": "y # z", "w": True}, "plain ${{ v }}"], "c": None}
    for bad in ("a: [1, 2]\n", "a: |\n  text\n", "a: 1\n   b: 2\n", "a: 1\na: 2\n", "a:\n\t- 1\n"):
        with pytest.raises(ValueError):
            load_yaml(bad)


# ---- the configuration files -----------------------------------------------------------------------
def test_project_yaml():
    project = load_yaml((CFLITE / "project.yaml").read_text())
    assert project["language"] == "python"
    assert project["fuzzing_engines"] == ["libfuzzer"]  # the only engine for python
    assert project["sanitizers"] and set(project["sanitizers"]) <= {"address", "undefined"}


def test_dockerfile_follows_the_python_builder_layout():
    lines = [line.split() for line in (CFLITE / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == ["FROM", "gcr.io/oss-fuzz-base/base-builder-python"]
    assert ["COPY", ".", "$SRC/pmdswap-fuzz"] in lines
    assert ["WORKDIR", "$SRC/pmdswap-fuzz"] in lines
    copy_build = [w for w in lines if w[:1] == ["COPY"] and w[-1] == "$SRC/"]
    assert [w[1] for w in copy_build] == [".clusterfuzzlite/build.sh"]
    assert (REPO / copy_build[0][1]).is_file()


def test_build_sh_is_valid_bash():
    r = subprocess.run(["bash", "-n", str(CFLITE / "build.sh")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert os.access(CFLITE / "build.sh", os.X_OK)


WORKFLOW_MODES = {"cflite_pr.yml": "code-change", "cflite_batch.yml": "batch",
                  "cflite_prune.yml": "prune"}


def _workflow(name: str) -> dict:
    return load_yaml((WORKFLOWS / name).read_text())


def _steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses") == action]


@pytest.mark.parametrize("name", sorted(WORKFLOW_MODES))
def test_workflow_builds_then_runs_the_python_fuzzers(name):
    wf = _workflow(name)
    mode = WORKFLOW_MODES[name]
    trigger = wf["on"]
    if mode == "code-change":
        assert "pull_request" in trigger
    else:  # batch and prune are scheduled
        assert [set(c) for c in trigger["schedule"]] == [{"cron"}]
        assert len(trigger["schedule"][0]["cron"].split()) == 5
    assert wf["permissions"] == "read-all"
    (job,) = wf["jobs"].values()
    (build,) = _steps_using(job, BUILD_ACTION)
    (run,) = _steps_using(job, RUN_ACTION)
    assert job["steps"].index(build) < job["steps"].index(run)
    assert build["with"]["language"] == "python" and run["with"]["language"] == "python"
    assert run["with"]["mode"] == mode
    assert int(run["with"]["fuzz-seconds"]) > 0
    assert run["with"]["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    # the build and the run use the same sanitizer, one project.yaml lists
    assert build["with"]["sanitizer"] == run["with"]["sanitizer"]
    sanitizers = load_yaml((CFLITE / "project.yaml").read_text())["sanitizers"]
    if run["with"]["sanitizer"] == "${{ matrix.sanitizer }}":
        assert set(job["strategy"]["matrix"]["sanitizer"]) <= set(sanitizers)
    else:
        assert run["with"]["sanitizer"] in sanitizers
    # batch and prune keep the corpus in the storage repo when the secret is set
    if mode in ("batch", "prune"):
        assert run["with"]["storage-repo"] == STORAGE


@pytest.mark.parametrize("name", ["cflite_pr.yml", "cflite_batch.yml"])
def test_fuzzing_workflows_report_sarif(name):
    (job,) = _workflow(name)["jobs"].values()
    (run,) = _steps_using(job, RUN_ACTION)
    assert run["with"]["output-sarif"] is True
    (upload,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith(
        "github/codeql-action/upload-sarif@")]
    assert job["steps"].index(upload) > job["steps"].index(run)
    assert upload["with"]["sarif_file"] == SARIF
    assert "always()" in upload["if"]  # a crash fails the run step: the SARIF is uploaded anyway
    assert job["permissions"]["security-events"] == "write"


def test_the_three_modes_are_shipped_and_prune_uploads_nothing():
    modes = set()
    for name in WORKFLOW_MODES:
        (job,) = _workflow(name)["jobs"].values()
        modes |= {s["with"]["mode"] for s in _steps_using(job, RUN_ACTION)}
    assert modes == {"code-change", "batch", "prune"}
    (prune,) = _workflow("cflite_prune.yml")["jobs"].values()
    assert "output-sarif" not in _steps_using(prune, RUN_ACTION)[0]["with"]
    assert "permissions" not in prune  # the workflow's read-all


def test_no_urls_in_the_integration_files():
    files = [*CFLITE.iterdir(), *WORKFLOWS.glob("cflite_*.yml")]
    assert len(files) >= 6
    for path in files:
        assert "://" not in path.read_text(), path


# ---- build.sh, run as the builder runs it ------------------------------------------------------------
STUB = """#!/bin/bash -eu
# Test stand-in for the python builder's compile_python_fuzzer FUZZER.py [PYINSTALLER ARGS]: the
# same files in $OUT (NAME.pkg, not executable, and the executable wrapper NAME that runs it), but
# NAME.pkg is the script itself, run by the test's python, instead of a PyInstaller bundle.
fuzzer_path=$1
shift
printf '%s\\n' "$fuzzer_path $*" >> "$STUB_LOG"
fuzzer_basename=$(basename -s .py "$fuzzer_path")
cp "$fuzzer_path" "$OUT/$fuzzer_basename.pkg"
chmod -x "$OUT/$fuzzer_basename.pkg"
cat > "$OUT/$fuzzer_basename" <<WRAPPER
#!/bin/sh
# LLVMFuzzerTestOneInput for fuzzer detection.
this_dir=\\$(dirname "\\$0")
exec "{python}" "\\$this_dir/$fuzzer_basename.pkg" "\\$@"
WRAPPER
chmod +x "$OUT/$fuzzer_basename"
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """build.sh run once: $SRC/pmdswap-fuzz is this checkout (a symlink, as the Dockerfile's COPY),
    $SRC/build.sh a copy (its COPY), the working directory $SRC/pmdswap-fuzz (its WORKDIR)."""
    tmp = tmp_path_factory.mktemp("cflite")
    src, out, work, bindir = (tmp / d for d in ("src", "out", "work", "bin"))
    for d in (src, out, work, bindir):
        d.mkdir()
    (src / "pmdswap-fuzz").symlink_to(REPO, target_is_directory=True)
    shutil.copy2(CFLITE / "build.sh", src / "build.sh")
    stub = bindir / "compile_python_fuzzer"
    stub.write_text(STUB.replace("{python}", sys.executable))
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMDSWAP_")}
    env.update(SRC=str(src), OUT=str(out), WORK=str(work), SANITIZER="address",
               STUB_LOG=str(tmp / "compile_python_fuzzer.log"),
               PATH=os.pathsep.join([str(bindir), str(Path(sys.executable).parent), env["PATH"]]),
               # the venv has the project installed (editable): build.sh's pip step is skipped
               PMDSWAP_CFLITE_SKIP_PIP="1")
    t0 = time.monotonic()
    r = subprocess.run(["bash", "-eux", str(src / "build.sh")], cwd=src / "pmdswap-fuzz", env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"tmp": tmp, "out": out, "work": work, "log": r.stdout + r.stderr,
            "calls": (tmp / "compile_python_fuzzer.log").read_text().splitlines(),
            "seconds": time.monotonic() - t0}


def test_build_packages_the_harness_as_one_target(built):
    out, work = built["out"], built["work"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [TARGET, f"{TARGET}.pkg", f"{TARGET}_seed_corpus.zip", f"{TARGET}.options"])
    # one compile_python_fuzzer call, on a copy of the harness named after the target
    assert built["calls"] == [f"{work}/{TARGET}.py --collect-submodules models"]
    assert (work / f"{TARGET}.py").read_bytes() == HARNESS.read_bytes()
    assert os.access(out / TARGET, os.X_OK)
    assert not (out / f"{TARGET}.pkg").stat().st_mode & stat.S_IXUSR
    assert "pip install" not in built["log"]  # PMDSWAP_CFLITE_SKIP_PIP=1 was honoured


def _seed_traces() -> dict[str, list]:
    return {f"seed-{p.stem}": parse_trace_bytes(p.read_bytes(), str(p))
            for p in sorted((REPO / "corpus" / "seeds").glob("*.trace"))}


def test_seed_corpus_zip_holds_every_seed_as_harness_input(built):
    # the harness decodes with this function (or it is not the one to compare with)
    assert re.search(rf"\b{ops_from_input.__name__}\b", HARNESS.read_text())
    traces = _seed_traces()
    assert len(traces) >= 20
    with zipfile.ZipFile(built["out"] / f"{TARGET}_seed_corpus.zip") as z:
        names = z.namelist()
        assert sorted(names) == sorted(traces)  # flat, one member per trace
        for name in names:
            data = z.read(name)
            ops = ops_from_input(data)
            assert ops, name
            assert ops == traces[name][:MAX_OPS], name


def test_options_let_libfuzzer_use_inputs_as_long_as_the_seeds(built):
    text = (built["out"] / f"{TARGET}.options").read_text()
    assert text.splitlines()[0] == "[libfuzzer]"
    max_len = int(re.search(r"^max_len = (\d+)$", text, re.M).group(1))
    with zipfile.ZipFile(built["out"] / f"{TARGET}_seed_corpus.zip") as z:
        assert max_len >= max(i.file_size for i in z.infolist())
    assert re.search(r"^len_control = 0$", text, re.M)


# ---- the packaged target, for a bounded number of inputs -------------------------------------------
def _unpack_corpus(built, name: str) -> Path:
    corpus = built["tmp"] / f"corpus-{name}"
    with zipfile.ZipFile(built["out"] / f"{TARGET}_seed_corpus.zip") as z:
        z.extractall(corpus)
    return corpus


def _run_target(built, name: str, bug: str | None, runs: int, max_time: int):
    corpus = _unpack_corpus(built, name)
    art = built["tmp"] / f"artifacts-{name}"
    art.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PMDSWAP_")}
    if bug:
        env["PMDSWAP_BUG"] = bug
    # libFuzzer's defaults otherwise (not the .options ClusterFuzzLite adds): with -seed=1 the
    # mutations, and so the run a mutation finds the bug at, are fixed
    cmd = [str(built["out"] / TARGET), str(corpus), f"-runs={runs}", f"-max_total_time={max_time}",
           f"-artifact_prefix={art}/", "-seed=1"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=built["tmp"], env=env, capture_output=True, text=True,
                       errors="replace", timeout=max_time + 120)
    return r.returncode, r.stdout + r.stderr, sorted(art.glob("crash-*")), time.monotonic() - t0


def _check_crash(rc, output, crashes, bug):
    assert rc != 0, output[-3000:]
    m = re.search(r"^DivergenceFound: (.+?) at op \d+: ", output, re.M)
    assert m, output[-3000:]
    assert len(crashes) == 1, output[-3000:]
    assert f"Test unit written to {crashes[0]}" in output
    # the artifact is the divergence of the injected bug: it replays with the bug, not without
    ops = ops_from_input(crashes[0].read_bytes())
    res = run_trace(ops, bug)
    assert res.divergence is not None and res.divergence.signature() == m.group(1)
    assert run_trace(ops, None).divergence is None
    return m.group(1)


def test_packaged_target_finds_a_catalogue_bug_in_the_seed_corpus(built):
    rc, output, crashes, secs = _run_target(built, "seeds-bug", BUG_FROM_SEEDS, runs=200, max_time=60)
    sig = _check_crash(rc, output, crashes, BUG_FROM_SEEDS)
    assert sig.startswith("rss:pageout"), sig
    assert "MS: 0 ;" in output  # a seed as it is, no mutation
    print(f"{BUG_FROM_SEEDS}: found in {secs:.1f} s")


def test_packaged_target_finds_a_catalogue_bug_by_mutation(built):
    with zipfile.ZipFile(built["out"] / f"{TARGET}_seed_corpus.zip") as z:
        seeds = [ops_from_input(z.read(n)) for n in z.namelist()]
    assert all(run_trace(ops, BUG_BY_MUTATION).divergence is None for ops in seeds)  # no seed has it
    rc, output, crashes, secs = _run_target(built, "mutation-bug", BUG_BY_MUTATION, runs=3000,
                                            max_time=60)
    sig = _check_crash(rc, output, crashes, BUG_BY_MUTATION)
    assert sig.startswith("mincore:"), sig
    assert "MS: 0 ;" not in output
    print(f"{BUG_BY_MUTATION}: found in {secs:.1f} s")


def test_packaged_target_without_a_bug_finds_nothing(built):
    with zipfile.ZipFile(built["out"] / f"{TARGET}_seed_corpus.zip") as z:
        n = len(z.namelist())
    runs = n + 100  # the whole seed corpus, then 100 mutations
    rc, output, crashes, secs = _run_target(built, "clean", None, runs=runs, max_time=90)
    assert rc == 0, output[-3000:]
    assert crashes == []
    assert "DivergenceFound" not in output
    assert re.search(rf"^Done {runs} runs in \d+ second", output, re.M), output[-3000:]
    print(f"clean: {runs} runs in {secs:.1f} s")
