#!/usr/bin/env python3
"""Grade untrusted notebook submissions with the sandbox kernel; grades never leave the grader.

    python grade.py --course course [--assignment ps1]     # a course laid out as below
    python grade.py --kernel sandbox-grader --tests course/tests/ps1.py \\
        --submissions course/submitted --notebook ps1.ipynb \\
        --work course/work --out course/results/ps1.json \\
        [--data course/data/ps1] [--audit-log course/audit/audit.jsonl]

``--course DIR`` reads the layout of the demo course (``demo/``): the assignment in
``source/<name>.ipynb``, hidden tests in ``tests/<name>.py``, data in ``data/<name>/``,
``submitted/<student>/<name>.ipynb``; it writes ``work/``, ``results/<name>.json``,
``feedback/<name>/`` and has the kernel write its audit log to ``audit/audit.jsonl``.
Options given explicitly win.

For each ``SUBMISSIONS/<student>/`` the grader:

1. copies the submission's regular files (never symlinks, never special files) into a
   fresh, empty workspace ``WORK/<student>-<random>/``, plus the instructor's ``--data``;
2. clears every output of the notebook and runs its code cells in a new kernel pinned to
   ``--kernel`` (the notebook's own ``kernelspec`` metadata is ignored), refusing to
   continue unless the kernel reports that it is sandbox-kernel and sandboxed;
3. runs the instructor's tests **in this process**. A test is a function
   ``test_*(probe)`` in the ``--tests`` module. ``probe("square(3)")`` evaluates one
   expression in the student's kernel and returns its value as plain JSON data
   (``None``, bool, int, float, str, list, dict); ``probe.error("f(-1)")`` returns the
   name of the exception the expression raised (or ``None``). The test compares those
   values with what it expects, here, where the submission cannot reach: expected
   values never enter the sandbox, so no output a submission prints, no object with a
   rigged ``__eq__`` and no patched interpreter can turn a wrong answer into a pass;
4. writes the results (points per test, sandbox events from the audit log) to ``--out``
   atomically, outside every workspace, and removes the workspace. The exit status is 1
   when a submission could not be graded completely (status "incomplete" or "error").

The tests module is ordinary (trusted) Python; ``POINTS = {"test_square": 2}`` sets the
points of each test (default 1). Probe answers are matched by a fresh random nonce and
by the id of the request that asked for them; a value the submission forges is only
a value, and it has to be the right one to earn anything.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import ctypes
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import stat
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

ANSWER_MIME = "text/x-sandbox-grader-answer"
MAX_NOTEBOOK_BYTES = 20 << 20
MAX_SUBMISSION_FILES = 200
MAX_SUBMISSION_BYTES = 50 << 20
MAX_ANSWER_BYTES = 1 << 20
MAX_DETAIL = 300
STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
# The code the probe runs in the student's kernel. It only packs a value as JSON; what
# it sends back is treated as untrusted data, however the submission has patched things.
# Builtins are reached through the module, so an honest notebook with a variable named
# ``type`` or ``display`` still gets its answers through.
PROBE_TEMPLATE = """\
import builtins as _grader_builtins
import json as _grader_json
from IPython.display import display as _grader_display


def _grader_plain(obj):
    if _grader_builtins.hasattr(obj, "tolist"):
        return obj.tolist()
    raise _grader_builtins.TypeError("not JSON")


try:
    _grader_value = ({expr})
except _grader_builtins.Exception as _grader_error:
    _grader_text = _grader_json.dumps(
        {{"error": _grader_builtins.type(_grader_error).__name__}}
    )
else:
    try:
        _grader_text = _grader_json.dumps(
            {{"value": _grader_value}}, default=_grader_plain, allow_nan=False
        )
    except _grader_builtins.Exception:
        _grader_text = '{{"error": "NotJSON"}}'
_grader_display({{{mime!r}: {nonce!r} + _grader_text}}, raw=True)
"""


class ProbeFailed(Exception):
    """The expression gave no usable value (it raised, timed out, or answered nonsense)."""


class GraderAbort(Exception):
    """The submission cannot be graded any further (kernel gone, grader deadline)."""


def _short(text: object) -> str:
    text = str(text)
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."


def set_not_dumpable() -> None:
    """Keep same-uid processes (a sandbox at the landlock level) out of our memory."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


# -- the instructor's tests ----------------------------------------------------------


@dataclass
class Test:
    name: str
    points: float
    func: Callable[[Probe], object]


def load_tests(path: Path) -> list[Test]:
    spec = importlib.util.spec_from_file_location(f"grader_tests_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the tests from {path}")
    module = importlib.util.module_from_spec(spec)
    # The course directory stays as the instructor left it: no __pycache__ beside the
    # hidden tests (a machine with PYTHONDONTWRITEBYTECODE set had hidden that).
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    points = dict(getattr(module, "POINTS", {}))
    tests = [
        Test(name, float(points.get(name, 1)), func)
        for name, func in vars(module).items()
        if name.startswith("test_") and callable(func)
    ]
    if not tests:
        raise SystemExit(f"{path} defines no test_* functions")
    unknown = set(points) - {t.name for t in tests}
    if unknown:
        raise SystemExit(f"POINTS names tests that do not exist: {', '.join(sorted(unknown))}")
    return tests


# -- probing the student's kernel ----------------------------------------------------


class Probe:
    """Evaluates expressions in the student's kernel; returns plain JSON values."""

    def __init__(self, client: NotebookClient, deadline: float) -> None:
        self.client = client
        self.deadline = deadline
        self.count = 0
        self.cells: list[str] = []

    def _answer(self, expr: str) -> dict[str, Any]:
        ast.parse(expr, mode="eval")  # an instructor's typo must not become a cell
        if time.monotonic() > self.deadline:
            raise GraderAbort("the submission ran out of grading time")
        nonce = secrets.token_hex(16)
        code = PROBE_TEMPLATE.format(expr=expr, mime=ANSWER_MIME, nonce=nonce)
        self.cells.append(code)
        cell = nbformat.v4.new_code_cell(code)
        self.count += 1
        # nbclient looks cells up by index: the probe sits at the end while it runs, and
        # is taken out again, so the saved notebook holds the student's cells only.
        cells = self.client.nb.cells
        cells.append(cell)
        try:
            self.client.execute_cell(cell, len(cells) - 1, store_history=False)
        except CellTimeoutError as exc:
            raise GraderAbort(f"the kernel did not answer a probe in time ({expr})") from exc
        except DeadKernelError as exc:
            raise GraderAbort("the kernel died") from exc
        finally:
            if cells and cells[-1] is cell:
                cells.pop()
        # Only outputs of this very request reach cell.outputs (nbclient matches the
        # parent message id); only text that starts with this probe's nonce counts.
        answers = [
            str(out["data"][ANSWER_MIME])
            for out in cell.outputs
            if out.get("output_type") == "display_data" and ANSWER_MIME in out.get("data", {})
        ]
        answers = [a[len(nonce) :] for a in answers if a.startswith(nonce)]
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        if len(set(answers)) != 1:
            why = f"{len(answers)} answers" if answers else "no answer"
            if errors:
                why += f"; the cell failed with {_short(errors[-1].get('ename', '?'))}"
            raise ProbeFailed(f"{expr}: {why}")
        text = answers[0]
        if len(text) > MAX_ANSWER_BYTES:
            raise ProbeFailed(f"{expr}: the answer is larger than {MAX_ANSWER_BYTES} bytes")
        try:
            answer = json.loads(text)
        except (ValueError, RecursionError):
            raise ProbeFailed(f"{expr}: the answer is not JSON") from None
        if not isinstance(answer, dict) or len(answer) != 1 or not {"value", "error"} & set(answer):
            raise ProbeFailed(f"{expr}: malformed answer")
        return answer

    def __call__(self, expr: str) -> Any:
        """The value of ``expr`` in the student's kernel, as JSON data."""
        answer = self._answer(expr)
        if "error" in answer:
            raise ProbeFailed(f"{expr} raised {_short(answer['error'])}")
        return answer["value"]

    def error(self, expr: str) -> str | None:
        """The name of the exception ``expr`` raised in the student's kernel, or None."""
        answer = self._answer(expr)
        return str(answer["error"]) if "error" in answer else None


# -- one submission ------------------------------------------------------------------


@dataclass
class Outcome:
    student: str
    status: str = "graded"  # graded | incomplete | error
    score: float = 0.0
    max_score: float = 0.0
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sandbox_level: str | None = None
    elapsed_s: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)


def copy_submission(src: Path, dest: Path) -> list[str]:
    """Copy regular files only; a symlink could point at the hidden tests on our side."""
    notes: list[str] = []
    total = files = 0
    for root, dirs, names in os.walk(src, followlinks=False):
        rel = Path(root).relative_to(src)
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)) or name.startswith("."):
                dirs.remove(name)
                notes.append(f"skipped {rel / name}: link or hidden directory")
        for name in names:
            path = Path(root, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                notes.append(f"skipped {rel / name}: not a regular file")
                continue
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    notes.append(f"skipped {rel / name}: not a regular file")
                    continue
                files += 1
                total += st.st_size
                if files > MAX_SUBMISSION_FILES or total > MAX_SUBMISSION_BYTES:
                    notes.append("the submission is too large; the rest was not copied")
                    return notes
                target = dest / rel / name
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "xb") as out:
                    shutil.copyfileobj(f, out)
    return notes


def read_notebook(path: Path) -> nbformat.NotebookNode:
    # Opened with O_NOFOLLOW and checked on the descriptor: a check of the path
    # followed by a read of the path could be raced into reading a link's target.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        raise ValueError("the notebook is missing or not a regular file") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("the notebook is missing or not a regular file")
        if st.st_size > MAX_NOTEBOOK_BYTES:
            raise ValueError(f"the notebook is larger than {MAX_NOTEBOOK_BYTES >> 20} MiB")
        nb = nbformat.reads(f.read(MAX_NOTEBOOK_BYTES + 1).decode("utf-8"), as_version=4)
    for cell in nb.cells:
        if cell.get("cell_type") == "code":
            # Stored outputs are whatever the student wanted us to see.
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _event_detail(record: dict[str, Any], outcome: str | None) -> str:
    """What happened, in words: the kernel's own detail, or one made from a cell record."""
    if record.get("detail"):
        return _short(record["detail"])
    rules = ", ".join(record.get("rules", []))
    if record.get("verdict") == "denied":
        return f"the cell was refused by the policy ({rules or 'no rule named'}) and did not run"
    resources = record.get("resources") or {}
    facts = [f"{outcome}"]
    if resources.get("wall_time_s") is not None:
        facts.append(f"after {resources['wall_time_s']:g} s")
    if resources.get("peak_memory_mb") is not None:
        facts.append(f"peak memory {resources['peak_memory_mb']:g} MiB")
    if resources.get("rolled_back"):
        facts.append("state rolled back to before the cell")
    return _short(", ".join(facts))


def audit_events(
    log: Path | None, offset: int, cells: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The audit records of this submission's kernel (matched by the cells we sent).

    ``cells`` holds (label, source) of every cell sent, so that each event says which
    cell caused it ("cell 3", "a probe").
    """
    if log is None or not log.is_file():
        return []
    labels: dict[str, str] = {}
    for label, source in cells:
        labels.setdefault(_sha256(source), label)
    hashes = set(labels)
    records = []
    with open(log, "rb") as f:
        f.seek(offset)
        for line in f:
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    kernels = {r.get("kernel_id") for r in records if r.get("cell_sha256") in hashes}
    events = []
    for r in records:
        if r.get("kernel_id") not in kernels:
            continue
        outcome = None
        if r.get("kind") == "cell":
            refused = r.get("verdict") == "denied"
            outcome = r.get("resources", {}).get("outcome", "refused" if refused else "ok")
        if r.get("kind") == "cell" and outcome == "ok" and r.get("verdict") == "allowed":
            continue
        events.append(
            {
                "kind": r.get("kind"),
                "cell": labels.get(r.get("cell_sha256", ""), "between cells"),
                "verdict": r.get("verdict"),
                "outcome": outcome,
                "rules": r.get("rules", []),
                "event": r.get("event"),
                "detail": _event_detail(r, outcome),
            }
        )
    return events


@dataclass
class Grader:
    kernel: str
    tests: list[Test]
    notebook: str
    work: Path
    data: Path | None = None
    audit_log: Path | None = None
    cell_timeout: float = 120.0
    submission_timeout: float = 600.0
    accept_levels: tuple[str, ...] = ("namespaces", "landlock")
    keep_work: bool = False
    kernel_args: list[str] = field(default_factory=list)

    def grade(self, student: str, src: Path, out_dir: Path | None) -> Outcome:
        outcome = Outcome(student, max_score=sum(t.points for t in self.tests))
        outcome.tests = {
            t.name: {"points": 0.0, "max_points": t.points, "passed": False, "detail": "not run"}
            for t in self.tests
        }
        started = time.monotonic()
        offset = self.audit_log.stat().st_size if self.audit_log and self.audit_log.is_file() else 0
        sent: list[tuple[str, str]] = []
        with self._workspace(student) as ws:
            try:
                outcome.notes += copy_submission(src, ws)
                if self.data is not None:
                    shutil.copytree(self.data, ws, dirs_exist_ok=True, symlinks=False)
                nb = read_notebook(ws / self.notebook)
            except Exception as exc:  # a hostile file may break nbformat in many ways
                outcome.status = "error"
                outcome.notes.append(f"cannot read the submission: {_short(exc)}")
                return outcome
            try:
                sent = self._run(nb, ws, outcome, started)
            except GraderAbort as exc:
                outcome.status = "incomplete"
                outcome.notes.append(str(exc))
            except Exception as exc:  # no kernel (NoSuchKernel ...): nothing was graded
                outcome.status = "error"
                outcome.notes.append(f"grading failed: {type(exc).__name__}: {_short(exc)}")
            finally:
                outcome.elapsed_s = round(time.monotonic() - started, 2)
                if out_dir is not None:
                    self._save_feedback(nb, out_dir / student)
        outcome.score = sum(t["points"] for t in outcome.tests.values())
        outcome.events = audit_events(self.audit_log, offset, sent)
        return outcome

    @contextlib.contextmanager
    def _workspace(self, student: str) -> Iterator[Path]:
        ws = Path(tempfile.mkdtemp(prefix=f"{student}-", dir=self.work))
        ws.chmod(0o755)
        try:
            yield ws
        finally:
            if not self.keep_work:
                shutil.rmtree(ws, ignore_errors=True)

    def _run(
        self, nb: nbformat.NotebookNode, ws: Path, outcome: Outcome, started: float
    ) -> list[tuple[str, str]]:
        # kernel_name pins the kernel: nbclient reads nb.metadata.kernelspec only when it
        # is empty. The notebook's own choice is overwritten too, so the saved copy says
        # what really ran.
        nb.metadata["kernelspec"] = {"name": self.kernel, "display_name": self.kernel}
        client = NotebookClient(
            nb,
            kernel_name=self.kernel,
            timeout=self.cell_timeout,
            startup_timeout=120,
            allow_errors=True,
            interrupt_on_timeout=False,
            record_timing=False,
            extra_arguments=list(self.kernel_args),
            resources={"metadata": {"path": str(ws)}},
        )
        deadline = started + self.submission_timeout
        sent: list[tuple[str, str]] = []
        try:
            with client.setup_kernel():
                assert client.kc is not None
                info = client.wait_for_reply(client.kc.kernel_info())
                content = info["content"] if info else {}
                level = (content.get("sandbox") or {}).get("level")
                outcome.sandbox_level = level
                if content.get("implementation") != "sandbox-kernel" or level not in (
                    self.accept_levels
                ):
                    raise GraderAbort(
                        f"kernel {self.kernel!r} is not a sandbox-kernel running sandboxed "
                        f"(implementation {content.get('implementation')!r}, level {level!r}); "
                        "nothing was graded"
                    )
                for index, cell in enumerate(nb.cells):
                    if cell.get("cell_type") != "code":
                        continue
                    if time.monotonic() > deadline:
                        raise GraderAbort("the submission ran out of grading time")
                    sent.append((f"cell {index + 1}", cell.source))
                    try:
                        client.execute_cell(cell, index)
                    except CellTimeoutError as exc:
                        raise GraderAbort(f"cell {index + 1} did not finish in time") from exc
                    except DeadKernelError as exc:
                        raise GraderAbort("the kernel died") from exc
                probe = Probe(client, deadline)
                try:
                    self._run_tests(probe, outcome)
                finally:
                    sent += [("a probe", code) for code in probe.cells]
        except GraderAbort:
            raise
        except (DeadKernelError, RuntimeError, TimeoutError) as exc:
            raise GraderAbort(f"the kernel failed: {_short(exc)}") from exc
        return sent

    def _run_tests(self, probe: Probe, outcome: Outcome) -> None:
        for test in self.tests:
            result = outcome.tests[test.name]
            try:
                test.func(probe)
            except GraderAbort as exc:
                result["detail"] = f"not run: {exc}"
                # The remaining tests keep "not run"; the kernel is not trusted to answer.
                raise
            except ProbeFailed as exc:
                result["detail"] = f"no value: {exc}"
            except AssertionError as exc:
                result["detail"] = f"wrong: {_short(exc) or 'assertion failed'}"
            except Exception as exc:
                # A bug in the test itself, or a value of an unexpected type.
                result["detail"] = f"failed: {type(exc).__name__}: {_short(exc)}"
                result["trace"] = _short(traceback.format_exc(limit=3))
            else:
                result.update(points=test.points, passed=True, detail="passed")

    def _save_feedback(self, nb: nbformat.NotebookNode, dest: Path) -> None:
        """The executed student cells (never the probes), for the instructor to review."""
        with contextlib.suppress(OSError, ValueError):
            dest.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, dest / self.notebook)


def write_results(path: Path, outcomes: list[Outcome], meta: dict[str, Any]) -> None:
    data = {
        "run": meta,
        "submissions": {
            o.student: {k: v for k, v in vars(o).items() if k != "student"} for o in outcomes
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def course_defaults(args: argparse.Namespace) -> None:
    """Fill the paths a ``--course`` directory implies; options given explicitly win."""
    course = args.course.resolve()
    name = args.assignment
    if name is None:
        sources = sorted((course / "source").glob("*.ipynb"))
        if len(sources) != 1:
            raise SystemExit(
                f"{course}/source holds {len(sources)} notebooks: name one with --assignment"
            )
        name = sources[0].stem
    implied = {
        "tests": course / "tests" / f"{name}.py",
        "submissions": course / "submitted",
        "notebook": f"{name}.ipynb",
        "work": course / "work",
        "out": course / "results" / f"{name}.json",
        "feedback": course / "feedback" / name,
        "audit_log": course / "audit" / "audit.jsonl",
    }
    if (course / "data" / name).is_dir():
        implied["data"] = course / "data" / name
    for key, value in implied.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.audit_log == implied["audit_log"]:
        # The kernel writes where we read (a lock on Policy.audit_log must name the same file).
        args.audit_log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        args.kernel_arg = [f"--Policy.audit_log={args.audit_log}", *args.kernel_arg]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--course", type=Path, help="a course directory laid out as demo/: fills the paths below"
    )
    parser.add_argument(
        "--assignment", help="with --course: the assignment (default: the one in source/)"
    )
    parser.add_argument(
        "--kernel",
        default="sandbox-grader",
        help="kernelspec name of the sandbox kernel (default sandbox-grader)",
    )
    parser.add_argument("--tests", type=Path, help="the instructor's tests module")
    parser.add_argument("--submissions", type=Path, help="one directory per student")
    parser.add_argument("--notebook", help="notebook file name in each submission")
    parser.add_argument("--work", type=Path, help="where workspaces are created")
    parser.add_argument("--out", type=Path, help="results file (JSON)")
    parser.add_argument("--feedback", type=Path, help="save executed notebooks here")
    parser.add_argument("--data", type=Path, help="files copied into every workspace")
    parser.add_argument("--audit-log", type=Path, help="the kernel's audit log, to summarize")
    parser.add_argument("--student", action="append", help="grade only these students")
    parser.add_argument("--cell-timeout", type=float, default=120.0)
    parser.add_argument("--submission-timeout", type=float, default=600.0)
    parser.add_argument(
        "--kernel-arg",
        action="append",
        default=[],
        help="extra kernel argument, as --kernel-arg=--Limits.wall_time_limit_s=30 (admin "
        "locks still apply: it can only tighten what they pin)",
    )
    parser.add_argument("--keep-work", action="store_true")
    args = parser.parse_args(argv)
    if args.course is not None:
        course_defaults(args)
    missing = [
        f"--{n}" for n in ("tests", "submissions", "notebook", "work", "out") if not vars(args)[n]
    ]
    if missing:
        parser.error(f"{', '.join(missing)} required (or --course DIR)")

    set_not_dumpable()
    args.work.mkdir(parents=True, exist_ok=True)
    grader = Grader(
        kernel=args.kernel,
        tests=load_tests(args.tests),
        notebook=args.notebook,
        work=args.work.resolve(),
        data=args.data,
        audit_log=args.audit_log,
        cell_timeout=args.cell_timeout,
        submission_timeout=args.submission_timeout,
        keep_work=args.keep_work,
        kernel_args=args.kernel_arg,
    )
    students = sorted(
        p.name for p in args.submissions.iterdir() if p.is_dir() and not p.is_symlink()
    )
    if args.student:
        students = [s for s in students if s in set(args.student)]
    outcomes = []
    for number, student in enumerate(students, 1):
        if not STUDENT_ID.match(student):
            print(f"skipping {student!r}: not a valid student id", file=sys.stderr)
            continue
        print(f"[{number}/{len(students)}] {student}: running {args.notebook} ...", flush=True)
        outcome = grader.grade(student, args.submissions / student, args.feedback)
        outcomes.append(outcome)
        print(
            f"[{number}/{len(students)}] {student:20} {outcome.score:6g} / {outcome.max_score:g}"
            f"  {outcome.status:10} {outcome.elapsed_s:6.1f} s  level={outcome.sandbox_level}"
            f"  sandbox events: {len(outcome.events)}",
            flush=True,
        )
    print(f"results: {args.out}", flush=True)
    write_results(
        args.out,
        outcomes,
        {"kernel": args.kernel, "tests": str(args.tests), "time": time.time()},
    )
    # Anything but "graded" needs a look from the instructor.
    return 1 if any(o.status != "graded" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
