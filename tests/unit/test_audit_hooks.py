"""The executor's runtime audit hooks, each scenario in a fresh subprocess (an audit hook
cannot be removed once added): denials carry the rule id, reports have the agreed shape,
and IPython, numpy, pandas, matplotlib, jedi and %%bash keep working."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

PRELUDE = """
import json, os, sys
from sandbox_kernel.child import audit

REPORTS = []
RESULTS = {}

def attempt(label, fn):
    try:
        fn()
        RESULTS[label] = {"outcome": "ok"}
    except audit.SandboxPolicyError as exc:
        RESULTS[label] = {"outcome": "denied", "rule": exc.rule_id, "message": str(exc),
                          "permission_error": isinstance(exc, PermissionError)}
    except Exception as exc:
        RESULTS[label] = {"outcome": "error", "error": f"{type(exc).__name__}: {exc}"}

def finish():
    sys.__stdout__.write("\\n@@RESULT@@" + json.dumps({"results": RESULTS, "reports": REPORTS}))
    sys.__stdout__.flush()
"""


def run_scenario(
    tmp_path: Path,
    preset: str,
    body: str,
    *,
    rules: dict[str, str] | None = None,
    runtime_hooks: bool = True,
    workspace: Path | None = None,
) -> dict[str, Any]:
    workspace = workspace or tmp_path / "workspace"
    home = tmp_path / "home"
    workspace.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    settings = {"preset": preset, "rules": rules or {}, "runtime_hooks": runtime_hooks}
    script = (
        PRELUDE
        + textwrap.dedent(
            f"""
        audit.install({settings!r}, REPORTS.append, {str(workspace)!r})
        """
        )
        + textwrap.dedent(body)
        + "\nfinish()\n"
    )
    path = tmp_path / "scenario.py"
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "PYTHONSTARTUP")}
    env.update(HOME=str(home), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    # run the scenario from inside the workspace, as the executor does; the script
    # itself lives outside it, like a cell that is not a workspace file
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    marker = proc.stdout.rfind("@@RESULT@@")
    assert marker >= 0, f"scenario crashed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    data: dict[str, Any] = json.loads(proc.stdout[marker + len("@@RESULT@@") :])
    data["stdout"] = proc.stdout[:marker]
    return data


def reports_for(data: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    return [r for r in data["reports"] if r["rule"] == rule]


def test_standard_preset(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "standard",
        """
        import subprocess
        attempt("os.system", lambda: os.system("true"))
        attempt("subprocess", lambda: subprocess.run(["true"], check=True))
        attempt("hidden import", lambda: __import__("o" + "s").system("true"))
        attempt("import ctypes", lambda: __import__("ctypes"))
        attempt("getframe", lambda: sys._getframe())
        attempt("write outside", lambda: open("/etc/sandbox-kernel-test", "w"))
        attempt("write workspace", lambda: open("notes.txt", "w").close())
        # A name of this run's own: a file an earlier run of another uid left in /tmp
        # would make the write fail for a reason that is not the policy's.
        tmp_probe = "/tmp/sandbox-kernel-audit-test-%d" % os.getpid()
        attempt("write tmp", lambda: (open(tmp_probe, "w").close(), os.unlink(tmp_probe)))
        attempt("read system file", lambda: open("/etc/hostname").close())
        import base64
        payload = base64.b64decode(b"aW1wb3J0IGN0eXBlcw==")  # "import ctypes"
        attempt("decoded payload", lambda: exec(payload))
        attempt("computed exec", lambda: exec("().__class__.__bases__[0].__subclasses__()"))
        attempt("harmless exec", lambda: exec("x = 1 + 1"))
        attempt("code attribute", lambda: (lambda: 0).__code__)
        import inspect
        attempt("inspect.signature", lambda: inspect.signature(attempt))
        attempt("pickle gadget", lambda: __import__("pickle").loads(
            b"cposix\\nsystem\\n(S'true'\\ntR."))
        attempt("add audit hook", lambda: sys.addaudithook(lambda *a: None))
    """,
    )
    results = data["results"]
    for label in (
        "os.system",
        "subprocess",
        "hidden import",
        "write workspace",
        "write tmp",
        "read system file",
        "harmless exec",
        "inspect.signature",
        "add audit hook",
    ):
        assert results[label] == {"outcome": "ok"}, (label, results[label])
    expected = {
        "import ctypes": "SKP201",
        "getframe": "SKP207",
        "write outside": "SKP240",
        "decoded payload": "SKP201",
        "computed exec": "SKP220",
        "code attribute": "SKP221",
        "pickle gadget": "SKP310",
    }
    for label, rule in expected.items():
        result = results[label]
        assert (result["outcome"], result.get("rule")) == ("denied", rule), (label, result)
        assert result["permission_error"]
        assert f"[{rule}]" in result["message"]
        assert f"c.Policy.rules = {{'{rule}': 'warn'}}" in result["message"]
    # warnings: os.system and subprocess were reported, not denied
    warned = {(r["event"], r["action"]) for r in reports_for(data, "SKP202")}
    assert {("os.system", "warn"), ("subprocess.Popen", "warn")} <= warned
    # the hook cannot be removed, and a new one is refused silently but reported
    assert ("sys.addaudithook", "deny") in {(r["event"], r["action"]) for r in data["reports"]}
    for report in data["reports"]:
        assert set(report) == {"type", "event", "rule", "action", "detail"}
        assert report["type"] == "audit"


def test_workspace_modules_are_checked_when_imported(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "standard",
        """
        sys.path.insert(0, "")
        with open("helper_ok.py", "w") as fh:
            fh.write("def f():\\n    return 42\\n")
        with open("helper_bad.py", "w") as fh:
            fh.write("x = 1\\nimport ctypes\\n")
        attempt("clean module", lambda: __import__("helper_ok").f())
        attempt("bad module", lambda: __import__("helper_bad"))
    """,
    )
    assert data["results"]["clean module"] == {"outcome": "ok"}
    bad = data["results"]["bad module"]
    assert bad["outcome"] == "denied"
    assert bad["rule"] == "SKP201"
    assert "helper_bad.py, line 2, column 8: [SKP201]" in bad["message"]


def test_classroom_preset_denies_processes(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "classroom",
        """
        attempt("os.system", lambda: os.system("true"))
        attempt("popen", lambda: os.popen("true").read())
        attempt("fork", lambda: os.fork())
        attempt("exec computed", lambda: exec("y = 2"))
        attempt("socket connect", lambda: __import__("socket").socket().connect(("127.0.0.1", 9)))
    """,
    )
    results = data["results"]
    assert results["os.system"]["rule"] == "SKP202"
    assert results["popen"]["rule"] == "SKP202"
    assert results["fork"]["rule"] == "SKP203"
    assert results["exec computed"] == {"outcome": "ok"}  # literal-equivalent code is fine
    assert results["socket connect"]["outcome"] == "denied"
    assert results["socket connect"]["rule"] in ("SKP204",)


def test_permissive_preset_records_instead(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "permissive",
        """
        attempt("import ctypes", lambda: __import__("ctypes"))
        attempt("getframe", lambda: sys._getframe())
    """,
    )
    assert data["results"]["import ctypes"] == {"outcome": "ok"}
    assert data["results"]["getframe"] == {"outcome": "ok"}
    assert ("import", "audit") in {(r["event"], r["action"]) for r in reports_for(data, "SKP201")}


def test_rule_overrides_apply_at_run_time(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "classroom",
        """
        attempt("os.system", lambda: os.system("true"))
    """,
        rules={"SKP202": "audit"},
    )
    assert data["results"]["os.system"] == {"outcome": "ok"}
    assert reports_for(data, "SKP202")[0]["action"] == "audit"


def test_runtime_hooks_off_installs_nothing(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "classroom",
        """
        attempt("os.system", lambda: os.system("true"))
        RESULTS["installed"] = audit.installed()
    """,
        runtime_hooks=False,
    )
    assert data["results"]["os.system"] == {"outcome": "ok"}
    assert data["results"]["installed"] is False
    assert data["reports"] == []


def test_install_twice_is_refused(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "standard",
        """
        attempt("again", lambda: audit.install({"preset": "standard"}, REPORTS.append, "."))
    """,
    )
    assert data["results"]["again"]["outcome"] == "error"
    assert "already installed" in data["results"]["again"]["error"]


def test_repeated_reports_are_rate_limited(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "standard",
        """
        for _ in range(40):
            os.system("true")
    """,
    )
    reports = [r for r in reports_for(data, "SKP202") if r["event"] == "os.system"]
    # the first five, then the 8th, 16th and 32nd repeat
    assert len(reports) == 8
    assert reports[-1]["detail"].endswith("(repeated 32 times)")


def test_report_callback_cannot_recurse(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "standard",
        """
        def noisy(record):
            # everything here raises audit events of its own
            os.system("true")
            open("/etc/hostname").close()
            REPORTS.append(record)
        audit._hook.report_fn = noisy
        attempt("os.system", lambda: os.system("true"))
    """,
    )
    assert data["results"]["os.system"] == {"outcome": "ok"}
    assert [r["event"] for r in reports_for(data, "SKP202")] == ["os.system"]


def test_ipython_and_data_science_stack_under_classroom(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "classroom",
        """
        sys.path.insert(0, "")
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.core.completer import provisionalcompleter
        shell = InteractiveShell.instance()
        def cell(label, source):
            result = shell.run_cell(source, silent=True)
            error = result.error_before_exec or result.error_in_exec
            RESULTS[label] = {"outcome": "ok" if result.success else "error",
                              "error": f"{type(error).__name__}: {error}" if error else ""}
        cell("bash", "%%bash\\necho from-bash")
        cell("bang", "!echo from-bang")
        cell("numpy", "import numpy as np\\nx = np.linalg.eigvals(np.eye(3))")
        cell("pandas", "import pandas as pd\\ndf = pd.DataFrame({'a': [1, 2]})\\ns = df.describe()")
        cell("matplotlib", "import matplotlib.pyplot as plt\\nfig, ax = plt.subplots()\\n"
                           "ax.plot([1, 2, 3])\\nax.set_title('t')\\nfig.savefig('plot.png')")
        cell("scipy", "from scipy.integrate import quad\\nv = quad(lambda t: t, 0, 1)")
        cell("sympy", "import sympy\\ne = sympy.expand((sympy.Symbol('x') + 1) ** 3)")
        cell("writefile", "%%writefile helper.py\\ndef f():\\n    return 1\\n")
        cell("import written", "import helper\\nassert helper.f() == 1")
        cell("timeit", "%timeit -n 1 -r 1 sum(range(10))")
        cell("traceback", "def g():\\n    1 / 0\\ntry:\\n    g()\\nexcept ZeroDivisionError:\\n"
                          "    import traceback; traceback.format_exc()")
        with provisionalcompleter():
            RESULTS["completion"] = [c.text for c in shell.Completer.completions("np.ara", 6)]
        RESULTS["plot"] = os.path.exists("plot.png")
        RESULTS["font cache"] = os.path.isdir(os.path.expanduser("~/.cache/matplotlib")) or \\
            os.path.isdir(os.path.expanduser("~/.config/matplotlib"))
    """,
    )
    results = data["results"]
    for label in (
        "bash",
        "bang",
        "numpy",
        "pandas",
        "matplotlib",
        "scipy",
        "sympy",
        "writefile",
        "import written",
        "timeit",
        "traceback",
    ):
        assert results[label]["outcome"] == "ok", (label, results[label])
    assert "from-bash" in data["stdout"]
    assert "from-bang" in data["stdout"]
    assert "arange" in results["completion"]
    assert results["plot"] is True
    assert results["font cache"] is True
    # %%bash ran through IPython: recorded, not denied
    bash = [r for r in reports_for(data, "SKP202") if "bash" in r["detail"]]
    assert bash
    assert all(r["action"] == "audit" for r in bash)


@pytest.mark.parametrize("preset", ["standard", "classroom"])
def test_denial_inside_ipython_cell_names_the_rule(tmp_path: Path, preset: str) -> None:
    data = run_scenario(
        tmp_path,
        preset,
        """
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        result = shell.run_cell("import base64\\nexec(base64.b64decode('aW1wb3J0IGN0eXBlcw=='))",
                                silent=True)
        error = result.error_in_exec
        RESULTS["error"] = {"type": type(error).__name__, "rule": getattr(error, "rule_id", ""),
                            "message": str(error)}
    """,
    )
    error = data["results"]["error"]
    assert error["type"] == "SandboxPolicyError"
    assert error["rule"] == "SKP201"


def test_error_is_a_permission_error_that_pickles() -> None:
    import pickle

    from sandbox_kernel.child.audit import SandboxPolicyError

    error = SandboxPolicyError("SKP201", "[SKP201] import ctypes (native code): ...")
    assert isinstance(error, PermissionError)
    again = pickle.loads(pickle.dumps(error))
    assert (again.rule_id, str(again)) == ("SKP201", str(error))


def test_hand_built_ast_is_checked(tmp_path: Path) -> None:
    data = run_scenario(
        tmp_path,
        "standard",
        """
        import ast
        tree = ast.Module(body=[ast.Import(names=[ast.alias(name="ctypes")])], type_ignores=[])
        tree = ast.fix_missing_locations(tree)
        attempt("compile ast", lambda: compile(tree, "<ast>", "exec"))
    """,
    )
    result = data["results"]["compile ast"]
    assert (result["outcome"], result.get("rule")) == ("denied", "SKP201")


def test_the_environment_stays_out_of_reach_inside_a_writable_directory(tmp_path: Path) -> None:
    """A virtualenv inside the workspace (or /tmp, or HOME): its configuration and this
    package are code, whatever directory holds them; its site-packages stays writable
    for the policy (the OS sandbox keeps it read-only), as anywhere else."""
    import sandbox_kernel

    prefix = Path(sys.prefix).resolve()
    probes = {
        "prefix config": prefix / "etc" / "jupyter" / f"zz_probe_{os.getpid()}.txt",
        "own package": Path(sandbox_kernel.__file__).resolve().parent
        / f"zz_probe_{os.getpid()}.py",
    }
    try:
        data = run_scenario(
            tmp_path,
            "standard",
            "".join(
                f"attempt({label!r}, lambda: open({str(path)!r}, 'w').close())\n"
                for label, path in probes.items()
            ),
            workspace=prefix.parent,
        )
        for label in probes:
            result = data["results"][label]
            assert result["outcome"] == "denied", (label, result)
            assert result["rule"] == "SKP240"
    finally:
        for path in probes.values():
            path.unlink(missing_ok=True)


# The Python-jail techniques that got a dangerous primitive past the static check
# (issue 15): each must be stopped at run time too, whatever the static pass saw.
# The payload walks to object.__subclasses__() (a static-only rule, SKP220): the
# runtime policy sees it only when it checks the code that is about to run.
WALK = "print('WALKED', len(().__class__.__base__.__subclasses__()))"


def _walk_bytecode(filename: str, source: Path | None = None) -> bytes:
    """A .pyc of WALK; with ``source``, its header matches that (harmless) source file."""
    import importlib.util
    import marshal

    mtime = int(source.stat().st_mtime) if source else 0
    size = source.stat().st_size if source else 0
    code = compile(WALK, filename, "exec")
    return (
        importlib.util.MAGIC_NUMBER
        + (0).to_bytes(4, "little")
        + mtime.to_bytes(4, "little")
        + size.to_bytes(4, "little")
        + marshal.dumps(code)
    )


@pytest.mark.parametrize("preset", ["standard", "classroom"])
def test_jail_techniques_are_stopped_at_run_time(tmp_path: Path, preset: str) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    harmless = workspace / "harm.py"
    harmless.write_text("x = 1\n")
    import importlib.util

    cache = Path(importlib.util.cache_from_source(str(harmless)))
    cache.parent.mkdir()
    cache.write_bytes(_walk_bytecode(str(harmless), harmless))
    (workspace / "bare.pyc").write_bytes(_walk_bytecode(str(workspace / "bare.py")))
    data = run_scenario(
        tmp_path,
        preset,
        f"""
        import io, pdb, code, timeit, zipfile, zipimport, json, _json, shutil, array
        sys.path.insert(0, "")
        WALK = {WALK!r}
        # a scripted debugger, stopped in the cell's code and in library code
        for label, target in (("pdb in cell code", lambda: None), ("pdb in a library", json.dumps)):
            out = io.StringIO()
            attempt(label, lambda: pdb.Pdb(stdin=io.StringIO("!" + WALK + "\\nc\\n"),
                                           stdout=out).runcall(target, 1)
                    if target is json.dumps else
                    pdb.Pdb(stdin=io.StringIO("!" + WALK + "\\nc\\n"), stdout=out).runcall(target))
            RESULTS[label + " output"] = out.getvalue()
        attempt("pdb onecmd", lambda: pdb.Pdb(stdout=io.StringIO()).onecmd("!" + WALK))
        # interpreters and timeit with a setup string
        attempt("InteractiveInterpreter", lambda: code.InteractiveInterpreter().runsource(WALK))
        attempt("InteractiveConsole", lambda: code.InteractiveConsole().push(WALK))
        attempt("timeit setup", lambda: timeit.Timer("pass", WALK).timeit(1))
        attempt("timeit stmt", lambda: timeit.repeat(WALK, number=1, repeat=1))
        # the pydoc pagers run a command
        attempt("pydoc pipepager", lambda: __import__("pydoc").pipepager("x", "true"))
        attempt("pydoc tempfilepager", lambda: __import__("pydoc").tempfilepager("x", "true"))
        # the site objects' internals pointed at the executor's memory
        license._Printer__filenames = ["/proc/self/mem"]
        license._Printer__lines = None
        attempt("license file list", lambda: license._Printer__setup())
        # a module the cell writes, in source, as bytecode, in a zip, native
        with open("wmod.py", "w") as fh:
            fh.write(WALK + "\\n")
        attempt("write then import", lambda: __import__("wmod"))
        attempt("pyc beside a harmless source", lambda: __import__("harm"))
        attempt("bare pyc", lambda: __import__("bare"))
        with zipfile.ZipFile("z.zip", "w") as z:
            z.writestr("zsrc.py", WALK + "\\n")
            z.write("bare.pyc", "zpyc.pyc")
        sys.path.insert(0, os.path.abspath("z.zip"))
        attempt("zip source", lambda: __import__("zsrc"))
        attempt("zip bytecode", lambda: __import__("zpyc"))
        attempt("zipimporter", lambda: zipimport.zipimporter(os.path.abspath("z.zip")).load_module("zpyc"))
        # A stdlib extension module's file, under another name (Debian's python3
        # builds array into the interpreter; _json is a file there too).
        native = next(m for m in (array, _json) if getattr(m, "__file__", None))
        suffix = os.path.basename(native.__file__)[len(native.__name__):]
        shutil.copy(native.__file__, "nativecopy" + suffix)
        attempt("extension module", lambda: __import__("nativecopy"))
        with open("okmod.py", "w") as fh:
            fh.write("value = 42\\n")
        attempt("ordinary module", lambda: __import__("okmod").value)
        RESULTS["pycache"] = sorted(os.listdir("__pycache__"))
        """,
        workspace=workspace,
    )
    results = data["results"]
    assert "WALKED" not in data["stdout"]
    for label in ("pdb in cell code", "pdb in a library"):
        assert "[SKP220]" in results[label + " output"], results[label + " output"]
    for label, rule in {
        "InteractiveInterpreter": "SKP220",
        "InteractiveConsole": "SKP220",
        "timeit setup": "SKP220",
        "timeit stmt": "SKP220",
        "write then import": "SKP220",
        "bare pyc": "SKP233",
        "zip source": "SKP220",
        "zip bytecode": "SKP233",
        "zipimporter": "SKP233",
        "extension module": "SKP201",
    }.items():
        assert (results[label]["outcome"], results[label].get("rule")) == ("denied", rule), (
            label,
            results[label],
        )
    # compiled from its source, not from the bytecode planted beside it
    assert results["pyc beside a harmless source"] == {"outcome": "ok"}
    assert results["ordinary module"] == {"outcome": "ok"}
    # no bytecode cache is written for workspace modules (it would never be read)
    assert results["pycache"] == [Path(importlib.util.cache_from_source("harm.py")).name]
    assert ("SKP207", "deny") in {(r["rule"], r["action"]) for r in data["reports"]}
    pagers = {(r["event"], r["action"]) for r in reports_for(data, "SKP202")}
    action = "deny" if preset == "classroom" else "warn"
    assert ("subprocess.Popen", action) in pagers
    if preset == "classroom":
        assert results["pydoc pipepager"]["rule"] == "SKP202"
