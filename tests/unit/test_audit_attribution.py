"""Who did it: the audit hook enforces what a cell does through a library that acts for
its caller (a callable handed to logging.config, multiprocessing, a thread or an
ExitStack; a standard-library client pointed at an address; a magic the cell runs), and
only records what a library does on its own. Each scenario in a fresh subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.test_audit_hooks import reports_for, run_scenario

# A path outside every allowed directory that does not exist: a write the hook lets
# through fails with FileNotFoundError ("error"), one it refuses is "denied".
OUTSIDE = "/nonexistent-sandbox-kernel-hookfix/out.txt"

CALLBACKS = """
import contextlib, functools, logging.config, threading, multiprocessing, urllib.request
import http.client

caught = {}
threading.excepthook = lambda a: caught.setdefault(
    "thread", getattr(a.exc_value, "rule_id", repr(a.exc_value)))
t = threading.Thread(target=os.system, args=("true",))
t.start(); t.join()
RESULTS["thread target"] = caught.get("thread", "ran")

attempt("partial", lambda: functools.partial(os.system, "true")())
attempt("map", lambda: list(map(os.system, ["true"])))
def refused_by(fn):
    # the rule of the refusal that ended fn, also when a library wrapped it
    try:
        fn()
    except Exception as exc:
        cause = exc
        while cause is not None and not isinstance(cause, audit.SandboxPolicyError):
            cause = cause.__cause__ or cause.__context__
        return getattr(cause, "rule_id", f"{type(exc).__name__}: {exc}")
    return "ran"
# logging.config wraps the handler's error in a ValueError whose cause is the refusal
RESULTS["dictConfig"] = refused_by(lambda: logging.config.dictConfig(
    {"version": 1, "handlers": {"h": {"()": "os.system", "command": "true"}}}))
def exit_stack():
    with contextlib.ExitStack() as stack:
        stack.callback(os.system, "true")
attempt("exitstack", exit_stack)
# urllib wraps the refusal in a URLError
RESULTS["urlopen"] = refused_by(lambda: urllib.request.urlopen("http://127.0.0.1:9/", timeout=3))
attempt("http.client",
        lambda: http.client.HTTPConnection("127.0.0.1", 9, timeout=3).request("GET", "/"))
attempt("logging handler", lambda: logging.config.dictConfig(
    {"version": 1, "handlers": {"h": {"class": "logging.NullHandler"}}}))
"""


def test_callables_handed_to_libraries_are_the_cells(tmp_path: Path) -> None:
    results = run_scenario(tmp_path, "classroom", CALLBACKS)["results"]
    assert results["thread target"] == "SKP202"
    assert results["dictConfig"] == "SKP202"
    for label in ("partial", "map", "exitstack"):
        assert results[label]["outcome"] == "denied", (label, results[label])
        assert results[label]["rule"] == "SKP202", (label, results[label])
    assert results["urlopen"] == "SKP204"
    assert results["http.client"]["outcome"] == "denied", results["http.client"]
    assert results["http.client"]["rule"] == "SKP204"
    # a dictConfig that names no dangerous factory still works
    assert results["logging handler"] == {"outcome": "ok"}


def test_standard_preset_warns_where_classroom_denies(tmp_path: Path) -> None:
    data = run_scenario(tmp_path, "standard", CALLBACKS)
    results = data["results"]
    # os.system(command=...) ran and returned 0, which is no handler
    assert results["dictConfig"].startswith("ValueError"), results["dictConfig"]
    assert results["exitstack"] == {"outcome": "ok"}
    # the connection was tried (nothing listens on port 9), with a warning of the cell's
    assert results["urlopen"].startswith("URLError"), results["urlopen"]
    warned = {r["detail"] for r in reports_for(data, "SKP204") if r["action"] == "warn"}
    assert any("127.0.0.1" in d for d in warned), data["reports"]
    processes = [r for r in reports_for(data, "SKP202") if r["action"] == "warn"]
    assert processes
    assert not any("by a library" in r["detail"] for r in processes)


def test_multiprocessing_fork_for_the_cell_is_refused(tmp_path: Path) -> None:
    results = run_scenario(
        tmp_path,
        "classroom",
        """
        import multiprocessing
        def start():
            child = multiprocessing.get_context("fork").Process(target=os.system,
                                                                args=("true",))
            child.start()
            child.join()
        attempt("process", start)
        attempt("pool", lambda: multiprocessing.get_context("fork").Pool(1))
        """,
    )["results"]
    # the fork is refused before any child exists: the target never runs
    assert results["process"]["outcome"] == "denied", results["process"]
    assert results["process"]["rule"] == "SKP203"
    assert results["pool"]["outcome"] == "denied", results["pool"]
    assert results["pool"]["rule"] == "SKP203"


def test_a_library_that_does_the_same_on_its_own_is_only_recorded(tmp_path: Path) -> None:
    """The negative control: the nearest deciding frame is a library's, so the same
    dictConfig factory and connection are recorded, not denied."""
    data = run_scenario(
        tmp_path,
        "classroom",
        """
        import sysconfig
        source = (
            "import logging.config, urllib.request\\n"
            "def configure(factory):\\n"
            "    logging.config.dictConfig({'version': 1, 'handlers': {'h': {'()': factory,"
            " 'command': 'true'}}})\\n"
            "def fetch(url):\\n"
            "    urllib.request.urlopen(url, timeout=3)\\n"
        )
        library = {}
        # a module that lives in site-packages, as a library does
        filename = os.path.join(sysconfig.get_paths()["purelib"], "hookfix_fake_library.py")
        exec(compile(source, filename, "exec"), library)
        attempt("library dictConfig", lambda: library["configure"]("os.system"))
        attempt("library urlopen", lambda: library["fetch"]("http://127.0.0.1:9/"))
        """,
    )
    results = data["results"]
    assert results["library dictConfig"]["outcome"] == "error", results  # ran: returned 0
    assert results["library urlopen"]["outcome"] == "error", results  # connection refused
    assert "SKP" not in results["library urlopen"]["error"], results
    recorded = reports_for(data, "SKP202") + reports_for(data, "SKP204")
    assert recorded
    assert all(r["action"] == "audit" and "by a library" in r["detail"] for r in recorded)


@pytest.mark.parametrize("preset", ["standard", "classroom"])
def test_writefile_magic_writes_for_the_cell(tmp_path: Path, preset: str) -> None:
    data = run_scenario(
        tmp_path,
        preset,
        f"""
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        def cell(label, source):
            result = shell.run_cell(source, silent=True)
            error = result.error_in_exec
            RESULTS[label] = {{"type": type(error).__name__ if error else "",
                               "rule": getattr(error, "rule_id", "")}}
        cell("outside", "%%writefile {OUTSIDE}\\npwned\\n")
        cell("line magic", "%history -f {OUTSIDE}")
        cell("workspace", "%%writefile helper.py\\nx = 1\\n")
        cell("tmp", "%%writefile {tmp_path}/written-in-tmp.txt\\nx = 1\\n")
        RESULTS["written"] = open("helper.py").read()
        """,
    )
    results = data["results"]
    assert results["outside"] == {"type": "SandboxPolicyError", "rule": "SKP240"}
    assert results["line magic"] == {"type": "SandboxPolicyError", "rule": "SKP240"}
    assert results["workspace"] == {"type": "", "rule": ""}
    assert results["tmp"] == {"type": "", "rule": ""}
    assert results["written"] == "x = 1\n"
