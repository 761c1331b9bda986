"""Autograding untrusted notebooks with the sandbox kernel: real grader runs, checked from outside.

A course is built in tmp_path with the example set-up of examples/autograde/ (its lock
file, moved into the course, with small limits), one honest correct submission, one
honest wrong one and hostile ones. Then:

- examples/autograde/grade.py grades them with the kernel at the strongest level, and
  the file attacks again at the ``landlock`` level;
- nbgrader autograde grades an nbgrader version of the assignment (when nbgrader is
  installed), with examples/autograde/nbgrader_config.py.

Checked from outside: the grades, hashes of the gradebook, hidden tests, source and
other submissions, canaries that must appear in no output, the processes left behind
(the grader runs under a subreaper), the run's duration, and the audit log.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "autograde"
NOTEBOOK = "ps1.ipynb"
KERNEL = "sandbox-python"
LANDLOCK_KERNEL = "sandbox-python-docker"
ANSWER_MIME = "text/x-sandbox-grader-answer"
# Small limits for the test (stricter than the example's, which a lower config may not
# loosen anyway).
LIMITS = {
    "Limits.wall_time_limit_s": 10,
    "Limits.cpu_time_limit_s": 10,
    "Limits.memory_limit_mb": 512,
    "Limits.max_processes": 64,
    "Limits.interrupt_grace_s": 2,
}
RUN_BUDGET_S = 150
MAX_SCORE = 6.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]

# The grader runs as a child of this wrapper, a child subreaper: whatever the grader or
# its kernels leave behind is reparented here and reported.
SUBREAPER = r"""
import ctypes, json, os, subprocess, sys, time
import psutil
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
report, cmd = sys.argv[1], sys.argv[2:]
start = time.monotonic()
rc = subprocess.call(cmd)
elapsed = time.monotonic() - start

def alive():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    return [p for p in psutil.Process().children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE]

deadline = time.monotonic() + 10
left = alive()
while left and time.monotonic() < deadline:
    time.sleep(0.1)
    left = alive()
info = []
for p in left:
    try:
        info.append({"pid": p.pid, "cmdline": p.cmdline()})
        p.kill()
    except psutil.Error:
        pass
with open(report, "w") as f:
    json.dump({"rc": rc, "elapsed": elapsed, "left": info}, f)
sys.exit(rc)
"""


@dataclass
class Run:
    rc: int
    elapsed: float
    left: list[dict[str, Any]]
    stdout: str
    stderr: str


def run_grader(cmd: list[str], env: dict[str, str], cwd: Path, report: Path) -> Run:
    proc = subprocess.run(
        [sys.executable, "-c", SUBREAPER, str(report), *cmd],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=RUN_BUDGET_S * 2,
        check=False,
    )
    data = json.loads(report.read_text())
    return Run(data["rc"], data["elapsed"], data["left"], proc.stdout, proc.stderr)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def tree_hashes(*paths: Path) -> dict[str, str]:
    hashes = {}
    for top in paths:
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def move_paths(value: Any, course: Path) -> Any:
    """The example lock file names /srv/cs101: point it at the course under test."""
    if isinstance(value, str):
        return value.replace("/srv/cs101", str(course))
    if isinstance(value, list):
        return [move_paths(v, course) for v in value]
    if isinstance(value, dict):
        return {k: move_paths(v, course) for k, v in value.items()}
    return value


def write_locks(course: Path, dest: Path) -> dict[str, Any]:
    locks = json.loads((EXAMPLE / "sandbox_kernel_locks.json").read_text())
    locks = move_paths(locks, course)
    locks["locked"].update(LIMITS)
    dest.write_text(json.dumps(locks, indent=2))
    return locks


def notebook(cells: list[Any], *, kernel: str = "python3") -> nbformat.NotebookNode:
    nb = new_notebook()
    # What a student's Jupyter writes: the stock kernel. The grader must ignore it.
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "Python 3", "language": "python"}
    nb.cells = [new_code_cell(c) if isinstance(c, str) else c for c in cells]
    return nb


def audit_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def cell_records(records: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    digest = sha256(source)
    return [r for r in records if r.get("cell_sha256") == digest]


def outcome_of(records: list[dict[str, Any]], source: str) -> list[str]:
    return [
        r["resources"].get("outcome", "")
        for r in cell_records(records, source)
        if r.get("kind") == "cell"
    ]


# -- the submissions ----------------------------------------------------------------------

CORRECT = [
    "def square(x):\n    return x * x",
    "def mean(xs):\n    if not xs:\n        raise ValueError('empty')\n"
    "    return sum(xs) / len(xs)",
    "with open('numbers.txt') as f:\n    total = sum(int(w) for w in f.read().split())",
]
WRONG = ["def square(x):\n    return x * 2", *CORRECT[1:]]

TIME_BOMB = "import time\nwhile True:\n    time.sleep(1)"
FORK_BOMB = "import os\nwhile True:\n    os.fork()"
PROCESS_BOMB = (
    "import multiprocessing as mp\nimport time\nprocs = []\nfor _ in range(200):\n"
    "    p = mp.Process(target=time.sleep, args=(60,))\n    p.start()\n    procs.append(p)"
)
MEMORY_BOMB = "blob = b'x' * (2 << 30)"
OUTPUT_FLOOD = "for _ in range(100):\n    print('z' * 1_000_000)"
HANGING_MEAN = (
    "def mean(xs):\n    if not xs:\n        raise ValueError('empty')\n"
    "    while True:\n        pass"
)
BOMBS = [
    TIME_BOMB,
    FORK_BOMB,
    PROCESS_BOMB,
    MEMORY_BOMB,
    OUTPUT_FLOOD,
    HANGING_MEAN,
    CORRECT[0],  # square: earned
]

EXIT_CELLS = [
    "exit()",
    "raise SystemExit(3)",
    "import os\nos._exit(0)",
    "import faulthandler\nfaulthandler._sigsegv()",
    "import os\nimport signal\nos.kill(os.getppid(), signal.SIGKILL)",
]
# mean is defined before the crashes, whose rollback should keep it; it is defined again
# at the end because a crash right after a cell sometimes restarts the executor instead
# (a race in the kernel, see examples/autograde/README.md): the points stay earned.
KILLER = [CORRECT[1], *EXIT_CELLS, "square = None", CORRECT[1]]

FORGE_HOOK = f"""\
import re
from IPython.display import display

def forge(info):
    # Answer every probe first, with the probe's own nonce read from its source.
    for nonce in re.findall(r"'([0-9a-f]{{32}})'", info.raw_cell):
        display({{{ANSWER_MIME!r}: nonce + '{{"value": 9}}'}}, raw=True)

get_ipython().events.register('pre_run_cell', forge)"""
BUILTINS_TAMPERING = "import builtins\nbuiltins.AssertionError = Exception"


def forger_cells() -> list[Any]:
    fake = new_code_cell(
        "print('All tests passed!')",
        execution_count=7,
        metadata={
            "tags": ["raises-exception"],
            "nbgrader": {"grade": True, "grade_id": "test_square", "points": 100},
        },
        outputs=[
            new_output("stream", name="stdout", text="test_square PASS\nScore: 100/6\n"),
            new_output("display_data", data={ANSWER_MIME: "0" * 32 + '{"value": 9}'}),
        ],
    )
    return [
        fake,
        # An answer that equals everything (the classic nbgrader cheat).
        "class AlwaysEqual(int):\n    def __eq__(self, other):\n        return True\n\n"
        "    def __ne__(self, other):\n        return False\n\n\n"
        "def square(x):\n    return AlwaysEqual(0)",
        FORGE_HOOK,
        # ...and the real answers never get out.
        "import IPython.display\nIPython.display.display = lambda *a, **k: None",
        BUILTINS_TAMPERING,
        "print('PASS ' + '0' * 32 + ' 6/6')",
        # The grader computes the expected total from its own copy of the data.
        "with open('numbers.txt', 'w') as f:\n    f.write('9')\ntotal = 9",
        "mean = square",
    ]


def snoop_cells(course: Path) -> list[str]:
    c = str(course)
    grab = f"""\
import os
C = {c!r}
loot = []


def grab(path):
    try:
        with open(path, 'rb') as f:
            loot.append(f.read(200_000).decode('latin-1'))
        return 'READ'
    except Exception as exc:
        return type(exc).__name__


def listing(path):
    try:
        return sorted(os.listdir(path))
    except Exception as exc:
        return type(exc).__name__


TARGETS = [C + '/tests/ps1.py', C + '/source/ps1/ps1.ipynb', C + '/release/ps1/ps1.ipynb',
           C + '/submitted/alice/ps1.ipynb', C + '/gradebook.json', C + '/results/ps1.json',
           C + '/audit/audit.jsonl', '../../tests/ps1.py', 'tests_link.py',
           'gradebook_link.json', 'course_link/tests/ps1.py']
for t in TARGETS:
    print(t, grab(t))
for d in [C, C + '/tests', C + '/submitted', C + '/work', os.getcwd()]:
    print('ls', d, listing(d))"""
    sweep = """\
for top in [C, '/tmp', '/srv', os.path.dirname(os.getcwd())]:
    for d, dirs, files in os.walk(top):
        for name in files:
            grab(os.path.join(d, name))
for pid in os.listdir('/proc'):
    if pid.isdigit():
        grab('/proc/' + pid + '/environ')
        grab('/proc/' + pid + '/cmdline')
print('LOOT', len(loot))
print('\\n'.join(loot)[:500_000])"""
    writes = """\
victims = [C + '/gradebook.json', C + '/results/ps1.json', C + '/tests/ps1.py',
           C + '/audit/audit.jsonl', C + '/submitted/alice/ps1.ipynb', C + '/forged.json',
           C + '/work/forged.json', '../forged.json']
for v in victims:
    try:
        with open(v, 'a') as f:
            f.write('{"kind": "forged", "score": 100}\\n')
        print('wrote', v)
    except Exception as exc:
        print('refused', v, type(exc).__name__)"""
    cheat = """\
def square(x):
    # At probe time: look for the expected values on the grader's side.
    for t in TARGETS:
        grab(t)
    return len(loot)


mean = square
total = -1"""
    return [grab, sweep, writes, cheat]


# -- the course ---------------------------------------------------------------------------


@dataclass
class Course:
    root: Path
    locks: Path
    audit: Path
    results: Path
    feedback: Path
    canaries: dict[str, str]
    env: dict[str, str]
    protected: list[Path] = field(default_factory=list)
    before: dict[str, str] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)

    def hashes(self) -> dict[str, str]:
        return tree_hashes(*self.protected)


def build_course(base: Path) -> Course:
    base.chmod(0o755)
    root = base / "cs101"
    canaries = {
        name: f"CANARY-{name}-{uuid.uuid4().hex[:20]}"
        for name in ("tests", "source", "release", "alice", "gradebook", "grader-env")
    }
    for sub in (
        "tests",
        "data/ps1",
        "source/ps1",
        "release/ps1",
        "submitted",
        "results",
        "feedback",
        "work",
        "audit",
    ):
        (root / sub).mkdir(parents=True)
    tests = (EXAMPLE / "demo" / "tests" / "ps1.py").read_text()
    (root / "tests" / "ps1.py").write_text(f"{tests}\n# {canaries['tests']}\n")
    (root / "data" / "ps1" / "numbers.txt").write_text("17\n23\n42\n58\n99\n")
    solution = notebook([*CORRECT, f"# {canaries['source']}"])
    nbformat.write(solution, root / "source" / "ps1" / NOTEBOOK)
    release = notebook(["def square(x):\n    ...", f"# {canaries['release']}"])
    nbformat.write(release, root / "release" / "ps1" / NOTEBOOK)
    (root / "gradebook.json").write_text(
        json.dumps({"ps0": {"alice": 6, "mallory": 0}, "note": canaries["gradebook"]})
    )
    locks = base / "sandbox_kernel_locks.json"
    write_locks(root, locks)
    env = {
        **os.environ,
        "SANDBOX_KERNEL_LOCKS": str(locks),
        "GRADER_SECRET": canaries["grader-env"],
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    course = Course(
        root=root,
        locks=locks,
        audit=root / "audit" / "audit.jsonl",
        results=root / "results" / "ps1.json",
        feedback=root / "feedback",
        canaries=canaries,
        env=env,
    )
    submissions: dict[str, list[Any]] = {
        # Honest, with names that clash with what a probe uses.
        "alice": [*CORRECT, f"type = display = json = 'ps1'  # {canaries['alice']}"],
        "bob": WRONG,
        "h-bombs": BOMBS,
        "h-forger": forger_cells(),
        "h-killer": KILLER,
        "h-snoop": snoop_cells(root),
    }
    for student, cells in submissions.items():
        (root / "submitted" / student).mkdir()
        nb = notebook(cells)
        if student == "h-killer":
            nb.metadata["kernelspec"]["argv"] = ["python3", "-m", "ipykernel_launcher"]
            nb.metadata["language_info"] = {"name": "python"}
        nbformat.write(nb, root / "submitted" / student / NOTEBOOK)
        course.sources[student] = [c if isinstance(c, str) else c.source for c in cells]
    snoop = root / "submitted" / "h-snoop"
    (snoop / "tests_link.py").symlink_to(root / "tests" / "ps1.py")
    (snoop / "gradebook_link.json").symlink_to(root / "gradebook.json")
    (snoop / "course_link").symlink_to(root)
    os.mkfifo(snoop / "pipe")
    # Not even a notebook: a link to the hidden tests.
    (root / "submitted" / "h-garbage").mkdir()
    (root / "submitted" / "h-garbage" / NOTEBOOK).symlink_to(root / "tests" / "ps1.py")
    course.protected = [
        root / "tests",
        root / "source",
        root / "release",
        root / "submitted",
        root / "data",
        root / "gradebook.json",
        locks,
    ]
    course.before = course.hashes()
    return course


def grade(course: Course, kernel: str, report: Path, *students: str) -> Run:
    root = course.root
    cmd = [
        sys.executable,
        str(EXAMPLE / "grade.py"),
        "--kernel",
        kernel,
        "--tests",
        str(root / "tests" / "ps1.py"),
        "--submissions",
        str(root / "submitted"),
        "--notebook",
        NOTEBOOK,
        "--work",
        str(root / "work"),
        "--out",
        str(course.results),
        "--feedback",
        str(course.feedback),
        "--data",
        str(root / "data" / "ps1"),
        "--audit-log",
        str(course.audit),
        # A careless set-up shares the whole course read-only so that notebooks can
        # load course data: the locked hidden paths still keep everything else out.
        f"--kernel-arg=--Isolation.extra_mounts=['{root}:ro']",
        "--cell-timeout",
        "60",
        "--submission-timeout",
        "120",
    ]
    for student in students:
        cmd += ["--student", student]
    return run_grader(cmd, course.env, root, report)


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Course, Run, dict]:
    course = build_course(tmp_path_factory.mktemp("grade-py"))
    run = grade(course, KERNEL, course.root.parent / "subreaper.json")
    results = json.loads(course.results.read_text()) if course.results.exists() else {}
    return course, run, results


def scores(results: dict) -> dict[str, float]:
    return {s: o["score"] for s, o in results["submissions"].items()}


def points(results: dict, student: str) -> dict[str, float]:
    return {t: r["points"] for t, r in results["submissions"][student]["tests"].items()}


# -- grade.py at the strongest level -------------------------------------------------------


def test_grader_run_finishes_within_budget(graded: tuple[Course, Run, dict]) -> None:
    _, run, results = graded
    print(run.stdout)
    assert results, f"no results file; grader said:\n{run.stdout}\n{run.stderr[-3000:]}"
    # 1: h-garbage could not be graded (and says so); everything else was.
    assert run.rc == 1, run.stderr[-3000:]
    assert run.elapsed < RUN_BUDGET_S, f"grading took {run.elapsed:.0f} s"
    statuses = {s: o["status"] for s, o in results["submissions"].items()}
    assert statuses == {**dict.fromkeys(statuses, "graded"), "h-garbage": "error"}, statuses
    assert set(results["submissions"]) == {
        "alice",
        "bob",
        "h-bombs",
        "h-forger",
        "h-killer",
        "h-snoop",
        "h-garbage",
    }


def test_honest_grades(graded: tuple[Course, Run, dict]) -> None:
    _, _, results = graded
    assert points(results, "alice") == {
        "test_square": 2,
        "test_mean": 2,
        "test_mean_empty": 1,
        "test_total": 1,
    }
    assert results["submissions"]["alice"]["score"] == MAX_SCORE
    # Wrong on square only: zero on that test, full marks on the others.
    assert points(results, "bob") == {
        "test_square": 0,
        "test_mean": 2,
        "test_mean_empty": 1,
        "test_total": 1,
    }
    assert "square(3) returned 6" in results["submissions"]["bob"]["tests"]["test_square"]["detail"]


def test_hostile_submissions_earn_nothing_they_did_not_earn(
    graded: tuple[Course, Run, dict],
) -> None:
    _, _, results = graded
    assert scores(results) == {
        "alice": 6,
        "bob": 4,
        # square is right; mean hangs (CellTimeout in the probe) but raises on [] as asked.
        "h-bombs": 3,
        "h-forger": 0,
        # mean, after exit(), SystemExit, os._exit, a segfault and a denied kill.
        "h-killer": 3,
        "h-snoop": 0,
        "h-garbage": 0,
    }
    bombs = results["submissions"]["h-bombs"]["tests"]
    assert bombs["test_mean"]["passed"] is False
    assert bombs["test_square"]["passed"] is True
    assert points(results, "h-killer")["test_mean"] == 2
    garbage = results["submissions"]["h-garbage"]
    assert garbage["status"] == "error"
    assert any("not a regular file" in n for n in garbage["notes"]), garbage


def test_forged_answers_reach_the_grader_and_are_rejected(
    graded: tuple[Course, Run, dict],
) -> None:
    # The forger's hook answered every probe with the probe's own nonce and the value 9,
    # and suppressed the real answers: the grader got the forgery, and it is only a value.
    _, _, results = graded
    forger = results["submissions"]["h-forger"]["tests"]
    assert "square(-4) returned 9" in forger["test_square"]["detail"], forger
    assert all(not t["passed"] for t in forger.values()), forger


def test_gradebook_hidden_tests_and_submissions_unchanged(
    graded: tuple[Course, Run, dict],
) -> None:
    course, _, results = graded
    assert course.hashes() == course.before
    assert not (course.root / "forged.json").exists()
    assert not (course.root / "work" / "forged.json").exists()
    # Workspaces are removed after each submission.
    assert list((course.root / "work").iterdir()) == []
    for record in audit_records(course.audit):
        assert record.get("kind") != "forged"
    assert "forged" not in json.dumps(results["submissions"]["h-snoop"])


def test_no_canary_in_any_output(graded: tuple[Course, Run, dict]) -> None:
    course, _, results = graded
    texts = {"results": course.results.read_text()}
    for student in ("h-snoop", "h-forger", "h-bombs", "h-killer", "bob"):
        path = course.feedback / student / NOTEBOOK
        texts[student] = path.read_text()
    snoop = texts["h-snoop"]
    assert "LOOT" in snoop, "the snoop's sweep did not run: the check would be vacuous"
    assert "refused" in snoop
    for name, text in texts.items():
        for canary in course.canaries.values():
            assert canary not in text, f"{canary} leaked into {name}"
    notes = results["submissions"]["h-snoop"]["notes"]
    for link in ("tests_link.py", "gradebook_link.json", "course_link", "pipe"):
        assert any(link in n for n in notes), notes


def test_kernel_pinned_despite_notebook_metadata(graded: tuple[Course, Run, dict]) -> None:
    # Every submission says kernelspec "python3". From outside: the sandbox kernel's own
    # audit log holds a record of every cell of every submission, and the kernel said
    # (on the trusted side) at which level it ran.
    course, _, results = graded
    records = audit_records(course.audit)
    for student, sources in course.sources.items():
        assert results["submissions"][student]["sandbox_level"] == "namespaces"
        for source in sources:
            assert cell_records(records, source), f"{student}: a cell did not run in the sandbox"
        saved = nbformat.read(course.feedback / student / NOTEBOOK, as_version=4)
        assert saved.metadata["kernelspec"]["name"] == KERNEL


def test_no_process_left_behind(graded: tuple[Course, Run, dict]) -> None:
    _, run, _ = graded
    assert run.left == []


def test_attempts_are_in_the_audit_log(graded: tuple[Course, Run, dict]) -> None:
    course, _, results = graded
    records = audit_records(course.audit)
    assert outcome_of(records, TIME_BOMB) == ["CellTimeout"]
    # With a memory cgroup the executor is killed and replaced (MemoryLimitExceeded);
    # without one (an unprivileged host) RLIMIT_AS makes the allocation fail in the cell.
    memory = outcome_of(records, MEMORY_BOMB)
    assert memory in (["MemoryLimitExceeded"], ["error"]), memory
    # The kernel stops the process bomb (ProcessLimitExceeded notice, processes reaped),
    # but records the cell as a plain error (see the report in examples/autograde/README.md).
    assert outcome_of(records, PROCESS_BOMB)[0] in ("ProcessLimitExceeded", "error")
    flood = [r for r in cell_records(records, OUTPUT_FLOOD) if r["kind"] == "cell"]
    assert flood[0]["resources"]["output_dropped_bytes"] > 0
    for source, rule in (
        (FORK_BOMB, "SKP203"),
        (BUILTINS_TAMPERING, "SKP211"),
        (EXIT_CELLS[4], "SKP203"),
    ):
        denied = [r for r in cell_records(records, source) if r["kind"] == "violation"]
        assert any(rule in r["rules"] and r["verdict"] == "denied" for r in denied), source
    crashes = [r for s in EXIT_CELLS[2:4] for r in cell_records(records, s) if r["kind"] == "cell"]
    assert [r["resources"]["outcome"] for r in crashes] == ["ExecutorDied", "ExecutorDied"]
    # The probe that hung in h-bombs' mean: a second timeout in that kernel.
    events = results["submissions"]["h-bombs"]["events"]
    stopped = [e for e in events if e["outcome"] in ("CellTimeout", "CpuLimitExceeded")]
    assert len(stopped) >= 2, events
    if memory == ["MemoryLimitExceeded"]:
        assert any(e["outcome"] == "MemoryLimitExceeded" for e in events), events


# -- grade.py at the landlock level --------------------------------------------------------


@pytest.fixture(scope="module")
def graded_landlock(tmp_path_factory: pytest.TempPathFactory) -> tuple[Course, Run, dict]:
    course = build_course(tmp_path_factory.mktemp("grade-py-landlock"))
    run = grade(course, LANDLOCK_KERNEL, course.root.parent / "subreaper.json", "alice", "h-snoop")
    results = json.loads(course.results.read_text()) if course.results.exists() else {}
    return course, run, results


def test_landlock_level_keeps_hidden_paths_unreadable(
    graded_landlock: tuple[Course, Run, dict],
) -> None:
    course, run, results = graded_landlock
    assert results, f"no results file; grader said:\n{run.stdout}\n{run.stderr[-3000:]}"
    level = results["submissions"]["alice"]["sandbox_level"]
    if level == "none":
        pytest.skip(
            "this host's Linux has no Landlock, so the simulated Docker host offers no sandbox"
        )
    # The simulated host blocks namespaces: any other level means the simulation broke.
    assert level == "landlock", f"the simulated Docker host ran the kernel at the {level!r} level"
    assert scores(results) == {"alice": 6, "h-snoop": 0}
    assert course.hashes() == course.before
    assert run.left == []
    snoop = (course.feedback / "h-snoop" / NOTEBOOK).read_text()
    assert "LOOT" in snoop
    for canary in course.canaries.values():
        assert canary not in snoop
        assert canary not in course.results.read_text()


# -- nbgrader ------------------------------------------------------------------------------

NBG_SOURCE_SQUARE = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"
NBG_SOURCE_MEAN = (
    "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION"
)


def nbg_meta(**kw: Any) -> dict[str, Any]:
    base = {"grade": False, "locked": False, "schema_version": 3, "solution": False, "task": False}
    base.update(kw)
    return {"nbgrader": base}


def nbgrader_source(canary: str) -> nbformat.NotebookNode:
    tests_square = (
        "assert square(3) == 9\n### BEGIN HIDDEN TESTS\nassert square(-4) == 16\n"
        f"assert square(1234) == 1234 ** 2  # {canary}\n### END HIDDEN TESTS"
    )
    tests_mean = "assert mean([1, 2, 3, 4]) == 2.5\n### BEGIN HIDDEN TESTS\nassert mean([5]) == 5\n"
    tests_mean += "### END HIDDEN TESTS"
    return notebook(
        [
            new_markdown_cell("# Problem set 1"),
            new_code_cell(NBG_SOURCE_SQUARE, metadata=nbg_meta(solution=True, grade_id="square")),
            new_code_cell(
                tests_square,
                metadata=nbg_meta(grade=True, locked=True, points=2, grade_id="test_square"),
            ),
            new_code_cell(NBG_SOURCE_MEAN, metadata=nbg_meta(solution=True, grade_id="mean")),
            new_code_cell(
                tests_mean,
                metadata=nbg_meta(grade=True, locked=True, points=2, grade_id="test_mean"),
            ),
        ]
    )


def nbg_eve(course: Path) -> str:
    c = str(course)
    return f"""\
import os, sqlite3
C = {c!r}
for path in [C + '/gradebook.db', C + '/source/ps1/ps1.ipynb', C + '/release/ps1/ps1.ipynb',
             C + '/submitted/alice/ps1/ps1.ipynb', C + '/autograded/alice/ps1/ps1.ipynb']:
    try:
        with open(path, 'rb') as f:
            print(path, f.read().decode('latin-1'))
    except Exception as exc:
        print(path, type(exc).__name__)
try:
    db = sqlite3.connect(C + '/gradebook.db')
    db.execute('CREATE TABLE pwned (x)')
    db.execute('UPDATE grade SET manual_score = 100')
    db.commit()
    print('gradebook written')
except Exception as exc:
    print('gradebook', type(exc).__name__)
import time
while True:
    time.sleep(1)


def square(x):
    return 0"""


def nbg_trudy(course: Path) -> str:
    """Links left in the autograded directory for nbgrader to write (and read) through."""
    c = str(course)
    return f"""\
import os
C = {c!r}
for target, name in [(C + '/source/ps1/ps1.ipynb', 'ps1.ipynb'),
                     (C + '/gradebook.db', 'gradebook-link.db'),
                     (C + '/source/ps1', '.ipynb_checkpoints')]:
    try:
        if os.path.lexists(name) and not os.path.isdir(name):
            os.unlink(name)
        os.symlink(target, name)
        print('MADE', name)
    except OSError as exc:
        print('REFUSED', name, exc.errno)


def square(x):
    return x * x"""


EQ_CHEAT = (
    "class AlwaysEqual(int):\n    def __eq__(self, other):\n        return True\n\n\n"
    "def square(x):\n    return AlwaysEqual(0)"
)


@dataclass
class NbgCourse:
    root: Path
    run: Run
    audit: Path
    scores: dict[str, dict[str, float]]
    before: dict[str, str]
    after: dict[str, str]
    canary: str
    solutions: dict[str, str]
    tables: list[str]


def _nbgrader_scores(root: Path, env: dict[str, str]) -> dict[str, dict[str, float]]:
    script = (
        "import json, sys\nfrom nbgrader.api import Gradebook\n"
        "out = {}\n"
        "with Gradebook('sqlite:///' + sys.argv[1]) as gb:\n"
        "    for s in gb.assignment_submissions('ps1'):\n"
        "        nb = s.notebooks[0]\n"
        "        out[s.student_id] = {g.name: g.score for g in nb.grades}\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script, str(root / "gradebook.db")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def nbgrader_course(tmp_path_factory: pytest.TempPathFactory) -> NbgCourse:
    if shutil.which("nbgrader", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("nbgrader is not installed (pip install nbgrader)")
    base = tmp_path_factory.mktemp("nbgrader")
    base.chmod(0o755)
    root = base / "cs101"
    (root / "source" / "ps1").mkdir(parents=True)
    (root / "audit").mkdir()
    config = (EXAMPLE / "nbgrader_config.py").read_text()
    assert 'KERNEL = "sandbox-grader"' in config
    (root / "nbgrader_config.py").write_text(
        config.replace('KERNEL = "sandbox-grader"', f'KERNEL = "{KERNEL}"')
    )
    canary = f"CANARY-hidden-{uuid.uuid4().hex[:20]}"
    nbformat.write(nbgrader_source(canary), root / "source" / "ps1" / NOTEBOOK)
    locks = base / "sandbox_kernel_locks.json"
    write_locks(root, locks)
    env = {
        **os.environ,
        "SANDBOX_KERNEL_LOCKS": str(locks),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    subprocess.run(
        ["nbgrader", "generate_assignment", "ps1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    release = nbformat.read(root / "release" / "ps1" / NOTEBOOK, as_version=4)
    solutions = {
        "alice": {
            "square": "def square(x):\n    return x * x",
            "mean": "def mean(xs):\n    return sum(xs) / len(xs)",
        },
        "bob": {
            "square": "def square(x):\n    return x * 2",
            "mean": "def mean(xs):\n    return sum(xs) / len(xs)",
        },
        "h-eve": {"square": nbg_eve(root), "mean": "mean = None"},
        "h-mallory": {"square": EQ_CHEAT, "mean": "mean = None"},
        "h-trudy": {"square": nbg_trudy(root), "mean": "mean = None"},
    }
    for student, answers in solutions.items():
        nb = copy.deepcopy(release)
        # A student's Jupyter: the stock kernel in the metadata.
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        for cell in nb.cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in answers:
                cell.source = answers[grade_id]
        (root / "submitted" / student / "ps1").mkdir(parents=True)
        nbformat.write(nb, root / "submitted" / student / "ps1" / NOTEBOOK)
    protected = [root / "source", root / "release", root / "submitted"]
    before = tree_hashes(*protected)
    run = run_grader(["nbgrader", "autograde", "ps1"], env, root, base / "subreaper.json")
    assert run.rc == 0, run.stderr[-5000:]
    with sqlite3.connect(root / "gradebook.db") as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return NbgCourse(
        root=root,
        run=run,
        audit=root / "audit" / "audit.jsonl",
        scores=_nbgrader_scores(root, env),
        before=before,
        after=tree_hashes(*protected),
        canary=canary,
        solutions={s: a["square"] for s, a in solutions.items()},
        tables=tables,
    )


def test_nbgrader_autograde_in_the_sandbox(nbgrader_course: NbgCourse) -> None:
    course = nbgrader_course
    print(f"nbgrader autograde: {course.run.elapsed:.1f} s")
    assert course.run.elapsed < RUN_BUDGET_S
    assert course.run.left == []
    assert course.scores["alice"] == {"test_square": 2, "test_mean": 2}
    assert course.scores["bob"] == {"test_square": 0, "test_mean": 2}
    # Eve read nothing, wrote nothing, and her time bomb ended in CellTimeout.
    assert course.scores["h-eve"] == {"test_square": 0, "test_mean": 0}
    assert course.after == course.before
    assert "pwned" not in course.tables
    records = audit_records(course.audit)
    # Kernel pinned: each submission's answer cells ran in the sandbox kernel, whose
    # audit log records them, although every notebook asked for "python3".
    for student, source in course.solutions.items():
        assert cell_records(records, source), student
    assert outcome_of(records, course.solutions["h-eve"]) == ["CellTimeout"]
    autograded = nbformat.read(
        course.root / "autograded" / "h-eve" / "ps1" / NOTEBOOK, as_version=4
    )
    eve_outputs = json.dumps(
        [c.get("outputs", []) for c in autograded.cells if c.source == course.solutions["h-eve"]]
    )
    assert "FileNotFoundError" in eve_outputs or "PermissionError" in eve_outputs
    assert course.canary not in eve_outputs
    assert "gradebook written" not in eve_outputs
    # Trudy's links for nbgrader to write the autograded notebook through: none is
    # left (the source stayed unchanged above), and her answer still earned its points.
    trudy = course.root / "autograded" / "h-trudy" / "ps1"
    links = [p.name for p in trudy.iterdir() if p.is_symlink()]
    assert links == [], links
    assert course.scores["h-trudy"]["test_square"] == 2


@pytest.mark.xfail(
    strict=True,
    reason="nbgrader takes pass/fail from the test cells' outputs, which the submission's "
    "own interpreter produces: an answer whose __eq__ is always True passes "
    "(examples/autograde/README.md; grade.py is not fooled, see h-forger)",
)
def test_nbgrader_is_not_fooled_by_an_always_equal_answer(nbgrader_course: NbgCourse) -> None:
    assert nbgrader_course.scores["h-mallory"]["test_square"] == 0
