"""Runtime policy in the executor: a PEP 578 audit hook enforcing the policy's rules.

The static check sees a cell's text; this hook sees what the cell does while it runs,
including what the text hid (``__import__('o'+'s').system``, decoded payloads, files
written then imported). It uses the same rule ids, actions and messages as the static
pass. It is installed by the sandboxed executor before any user code runs, and it
cannot be removed.

Who did it: an event is enforced when it comes from user code (a cell, a file in the
workspace, code compiled at run time), not when a library does it on its own behalf
(numpy importing ctypes, IPython running ``%%bash``, matplotlib writing its font cache).
The origin is the innermost Python frame that is not part of the standard-library
module implementing the operation (``subprocess.py`` for ``subprocess.Popen``, the
import machinery for ``import``), nor of a module that acts for its caller: one that
calls what it is handed (``logging.config`` factories, ``multiprocessing`` targets,
``contextlib`` callbacks), a standard-library client that connects where it is told
(``urllib.request``, ``http.client``), an IPython magic the cell runs (for file
writes: ``%%writefile``). Library-originated events are at most recorded.
Only the innermost deciding frame counts, not any frame on the stack: a cell that
imports matplotlib or runs ``%pip`` or ``%%bash`` has its frame far down the stack of
the library's own work (``fc-list``, pip's process), which stays the library's.

Honest limit: audit hooks are a second layer, not a boundary. Native code (ctypes,
cffi, C extensions) can skip them entirely, which is why ctypes and cffi are denied
too, and a library can be made to act for the user. The OS sandbox is the boundary.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import os
import re
import site
import sys
import sysconfig
import tempfile
import threading
import tokenize
from collections.abc import Callable, Iterable
from pathlib import PosixPath, PurePosixPath
from types import CodeType, FrameType
from typing import Any

from ..paths import PACKAGE_DIR, SINK_DEVICES, device_paths, interpreter_prefixes
from ..policy.alternatives import alternative
from ..policy.check import check_code
from ..policy.names import ATTRIBUTE_RULES, dangerous_global, rule_for_module, rule_for_name
from ..policy.settings import PolicySettings
from ..policy.verdict import Finding, allow_hint, describe
from .explain import private_notice

__all__ = ["SandboxPolicyError", "adopt_process", "install", "installed"]

Report = Callable[[dict[str, Any]], None]

# Reports per distinct (event, rule, action, detail) before only powers of two are sent.
REPORTS_PER_KEY = 5
MAX_KEYS = 4096
MAX_DETAIL = 500
_CACHE_SIZE = 256

_THIS_FILE = __file__
_PROC_MEM = re.compile(r"/proc/(self|thread-self|\d+)(/task/\d+)?/mem")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

_installed = False
_hook: _Hook | None = None


class SandboxPolicyError(PermissionError):
    """An operation the sandbox policy denies while a cell runs.

    A PermissionError, so library code that already handles "not allowed" keeps
    behaving sensibly. ``rule_id`` is the policy rule (SKPnnn).
    """

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(message)
        self.rule_id = rule_id

    def __reduce__(self) -> tuple[type[SandboxPolicyError], tuple[str, str]]:
        # so that it survives pickling (multiprocessing sends exceptions back)
        return type(self), (self.rule_id, str(self))


def installed() -> bool:
    """Whether the hook is active in this process."""
    return _installed


def adopt_process() -> None:
    """Make the current process the one that reports (call it in a forked snapshot that
    has been promoted to be the executor; other forked children never report, since
    they must not write to the executor's channel)."""
    if _hook is not None:
        _hook.pid = os.getpid()


def install(
    settings: dict[str, Any],
    report: Report,
    workspace: str,
    notify: Callable[[str], None] | None = None,
) -> None:
    """Install the audit hook; call it once, before any user code runs.

    ``settings`` is ``PolicySettings.to_dict()`` (JSON from the kernel). ``report`` is
    called with ``{"type": "audit", "event", "rule", "action", "detail"}`` for each
    violation (rate-limited); it may be called from any thread, with the hook active,
    so it should only queue or write a frame, never block for long. ``workspace`` is
    the directory cells may write to. ``notify`` gets the one-time notices for the user
    (the first write to the private /tmp or HOME). Does nothing when ``runtime_hooks``
    is false.
    """
    global _installed, _hook
    if _installed:
        raise RuntimeError("the sandbox audit hook is already installed in this process")
    policy = PolicySettings.from_dict(settings)
    if not policy.runtime_hooks:
        return
    hook = _Hook(policy, report, workspace)
    hook.notify = notify
    hook.warm_up()
    from . import imports

    imports.install(hook.user_path, hook.decide)
    sys.addaudithook(hook)
    _hook = hook
    _installed = True


def _safe_repr(value: object, depth: int = 0) -> str:
    """repr() of plain data only: the hook must never run user code (a __repr__)."""
    kind = type(value)
    if value is None or kind in (bool, int, float):
        return repr(value)
    if kind in (str, bytes):
        text = repr(value)
        return text if len(text) <= 200 else text[:197] + "..."
    if kind in (tuple, list) and depth < 2:
        items = [_safe_repr(v, depth + 1) for v in value[:8]]  # type: ignore[index]
        if len(value) > 8:  # type: ignore[arg-type]
            items.append("...")
        return ("(%s)" if kind is tuple else "[%s]") % ", ".join(items)
    if kind in (PosixPath, PurePosixPath):
        return repr(str(value))
    return "<object>"


def _std(*names: str) -> frozenset[str]:
    """Filenames of standard-library modules, both on disk and frozen (3.11 freezes os)."""
    stdlib = sysconfig.get_paths()["stdlib"]
    out: set[str] = set()
    for name in names:
        out.add(os.path.join(stdlib, name))
        module = name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        out.add(f"<frozen {module}>")
    return frozenset(out)


# execfile/runfile run a file for their caller (child/runfile.py).
_RUNFILE = os.path.join(os.path.dirname(os.path.abspath(_THIS_FILE)), "runfile.py")
_IMPORT_MACHINERY = _std(
    "importlib/__init__.py", "importlib/_bootstrap.py", "importlib/_bootstrap_external.py"
)
_THREADS = _std("threading.py", "concurrent/futures/thread.py")
# Standard-library modules that call what their caller hands them, or act where it
# points them: their frames stand for the caller, so the caller decides who did it (a
# cell that passes os.system as a logging factory, a multiprocessing target or an
# ExitStack callback did it; a library that does the same did it itself).
_CALLERS = _std("logging/config.py", "contextlib.py", "sched.py")
# multiprocessing forks (and runs the target) for whoever started the process or pool.
_MULTIPROCESSING = _std(
    "multiprocessing/process.py",
    "multiprocessing/context.py",
    "multiprocessing/popen_fork.py",
    "multiprocessing/popen_forkserver.py",
    "multiprocessing/popen_spawn_posix.py",
    "multiprocessing/pool.py",
    "multiprocessing/util.py",
    "concurrent/futures/process.py",
)
# The standard library's clients connect to the address their caller gives them.
_CLIENTS = _std(
    "urllib/request.py",
    "http/client.py",
    "ftplib.py",
    "smtplib.py",
    "poplib.py",
    "imaplib.py",
    "xmlrpc/client.py",
    "ssl.py",
)
# Per family of events: the modules whose frames stand for their caller.
_TRANSPARENT: dict[str, frozenset[str]] = {
    "import": _IMPORT_MACHINERY | _THREADS,
    "compile": _IMPORT_MACHINERY
    | _THREADS
    | {_RUNFILE}
    | _std(
        "runpy.py",
        "code.py",
        "codeop.py",
        "timeit.py",
        "cProfile.py",
        "profile.py",
        "pdb.py",
        "bdb.py",
        "cmd.py",
    ),
    "process": _THREADS
    | _CALLERS
    | _MULTIPROCESSING
    | _std(
        "subprocess.py",
        "os.py",
        "pty.py",
        # its pagers run the command they are given: the caller's command
        "pydoc.py",
        "asyncio/subprocess.py",
        "asyncio/base_subprocess.py",
        "asyncio/unix_events.py",
        "asyncio/base_events.py",
    ),
    "control": _THREADS | _CALLERS | _MULTIPROCESSING | _std("os.py", "pty.py", "signal.py"),
    "native": _THREADS | _std("ctypes/__init__.py", "ctypes/util.py", "ctypes/_endian.py"),
    "network": _THREADS | _CALLERS | _CLIENTS | _std("socket.py"),
    "frames": _THREADS | _std("inspect.py"),
    "files": _THREADS
    | _std(
        "pathlib.py",
        "shutil.py",
        "codecs.py",
        "gzip.py",
        "bz2.py",
        "lzma.py",
        "zipfile.py",
        "tarfile.py",
        "tempfile.py",
        "fileinput.py",
        "os.py",
    ),
    "audit": _THREADS,
    "other": _THREADS,
}
# Library frames that act for the user: IPython evaluates {expr} fields of shell
# commands and magic lines with eval() in IPython/utils/text.py.
_USER_PROXIES = {"compile": ("IPython/utils/text.py",)}
# Single library functions that stand in for a builtin in the user's namespace: the
# cell's `open` is IPython's _modified_open, which only checks its argument.
_TRANSPARENT_FUNCTIONS = frozenset({"_modified_open"})
_TRANSPARENT_FUNCTION_FILE = os.path.join("IPython", "core", "interactiveshell.py")
# A magic the cell runs writes the files the cell names (%%writefile, %save, %logstart,
# %history -f): for file writes, IPython's magics and the calls that run them stand for
# the cell. Only for files: %%bash, ! and %pip start programs for IPython itself.
_MAGIC_RUNNERS = frozenset({"run_cell_magic", "run_line_magic"})
_MAGICS_DIR = os.sep + os.path.join("IPython", "core", "magics", "")
_MAGIC_FUNCTIONS = _TRANSPARENT_FUNCTIONS | _MAGIC_RUNNERS
# Debuggers run the commands they are fed (by the cell, or typed by the user) as code,
# wherever they stopped, library code included.
_DEBUGGER_FILES = _std("bdb.py", "cmd.py")
# Families whose library-originated events are still worth a record.
_RECORD_LIBRARY = frozenset({"process", "native", "network", "files", "audit"})


class _Hook:
    """The audit hook: a dispatch table from event name to handler."""

    def __init__(self, policy: PolicySettings, report: Report, workspace: str) -> None:
        self.actions = dict(policy.actions)
        self.policy = policy
        self.report_fn = report
        self.pid = os.getpid()
        self.local = threading.local()
        self.seen: dict[tuple[str, str, str, str], int] = {}
        self.checked: dict[tuple[bytes, str], list[Finding]] = {}
        self.checked_files: set[str] = set()
        self.reported_error = False
        self.notify: Callable[[str], None] | None = None
        # The private directories whose first write gets a notice, home first (a
        # fallback HOME may live in /tmp); the ones already noticed.
        self.private = {"home": _real(os.path.expanduser("~")), "tmp": _real(tempfile.gettempdir())}
        self.noticed: set[str] = set()

        home = os.path.expanduser("~")
        self.workspace = _real(workspace) if workspace else ""
        self.own = (PACKAGE_DIR + os.sep,)
        user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else ""
        self.user_dirs = tuple(
            d + os.sep for d in dict.fromkeys(filter(None, [self.workspace, _real(user_site)]))
        )
        paths = sysconfig.get_paths()
        library = [paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")]
        library += interpreter_prefixes()
        with contextlib.suppress(AttributeError):  # absent in some virtualenvs
            library += site.getsitepackages()
        self.library = (
            "<frozen ",
            *(
                d + os.sep
                for d in dict.fromkeys(_real(p) for p in library if p)
                if d and d != os.sep
            ),
        )
        writable = [
            self.workspace,
            tempfile.gettempdir(),
            "/tmp",
            "/var/tmp",
            "/dev/shm",
            home,
            paths.get("purelib", ""),
            paths.get("platlib", ""),
            user_site,
            "/proc/self/fd",
            "/dev/fd",
        ]
        self.writable = tuple(dict.fromkeys(_real(p) for p in writable if p))
        self.writable_files = frozenset(
            {*device_paths(SINK_DEVICES), "/dev/tty", "/dev/stdout", "/dev/stderr"}
        )
        # Prefixes and this package: code and configuration, except the site
        # directories kept writable above.
        self.site_dirs = tuple(_real(p) + os.sep for p in writable if p and p in library)
        self.code_only = (*self.library[1:], *self.own)
        self.user_files = tuple(
            d + os.sep for d in self.writable if d not in ("/proc/self/fd", "/dev/fd")
        )

        self.handlers: dict[str, Callable[[str, tuple[Any, ...]], None]] = {
            "import": self._import,
            "compile": self._compile,
            "exec": self._exec,
            "object.__getattr__": self._getattr,
            "object.__setattr__": self._setattr,
            "sys._getframe": self._frames,
            "sys._current_frames": self._frames,
            "sys._current_exceptions": self._frames,
            "gc.get_referrers": self._frames,
            "gc.get_referents": self._frames,
            "gc.get_objects": self._frames,
            "sys.settrace": self._simple("SKP208", "other"),
            "sys.setprofile": self._simple("SKP208", "other"),
            "sys.addaudithook": self._simple("SKP209", "audit"),
            "setopencodehook": self._simple("SKP209", "audit"),
            "os.system": self._simple("SKP202", "process"),
            "os.exec": self._simple("SKP202", "process"),
            "os.posix_spawn": self._simple("SKP202", "process"),
            "os.spawn": self._simple("SKP202", "process"),
            "subprocess.Popen": self._simple("SKP202", "process"),
            "os.fork": self._simple("SKP203", "control"),
            "os.forkpty": self._simple("SKP203", "control"),
            "os.kill": self._simple("SKP203", "control"),
            "os.killpg": self._simple("SKP203", "control"),
            "signal.pthread_kill": self._simple("SKP203", "control"),
            "socket.connect": self._simple("SKP204", "network"),
            "socket.bind": self._simple("SKP204", "network"),
            "socket.sendto": self._simple("SKP204", "network"),
            "socket.sendmsg": self._simple("SKP204", "network"),
            "marshal.loads": self._marshal,
            "marshal.load": self._marshal,
            "code.__new__": self._simple("SKP233", "other"),
            "function.__new__": self._simple("SKP233", "other"),
            "pickle.find_class": self._pickle,
            "open": self._open,
            "os.remove": self._path_op(0),
            "os.rmdir": self._path_op(0),
            "os.mkdir": self._path_op(0),
            "os.rename": self._path_op(0, 1),
            "os.symlink": self._path_op(1),
            "os.link": self._path_op(1),
            "os.truncate": self._path_op(0),
            "os.chmod": self._path_op(0),
            "os.chown": self._path_op(0),
            "shutil.rmtree": self._path_op(0),
        }
        for event in (
            "dlopen",
            "dlsym",
            "dlsym/handle",
            "cdata",
            "cdata/buffer",
            "call_function",
            "addressof",
            "string_at",
            "wstring_at",
            "PyObj_FromPtr",
            "set_errno",
            "get_errno",
            "create_string_buffer",
            "create_unicode_buffer",
            "set_exception",
            "seh_exception",
        ):
            self.handlers[f"ctypes.{event}"] = self._simple("SKP201", "native")

    # -- the hook ----------------------------------------------------------------------

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        handler = self.handlers.get(event)
        if handler is None:
            return  # the hot path: nearly every event ends here
        local = self.local
        if getattr(local, "busy", False):
            return  # an event raised by the hook itself
        __tracebackhide__ = True  # IPython leaves the hook's frames out of tracebacks
        local.busy = True
        try:
            handler(event, args)
        except SandboxPolicyError:
            raise
        except Exception as exc:  # a bug here must not break the cell
            self._internal_error(event, exc)
        finally:
            local.busy = False

    def warm_up(self) -> None:
        """Import and run, before the hook is active, everything the handlers use."""
        check_code("import os\nget_ipython().system('ls {x}')\nexec(b'1')", self.policy)
        check_code(b"# coding: latin-1\nx = 1\n", self.policy)
        tokenize.detect_encoding(io.BytesIO(b"x = 1\n").readline)
        _real(os.getcwd())

    # -- decisions and reports -----------------------------------------------------------

    def _act(
        self, rule: str, origin: str, event: str, subject: str, *, detail: str, family: str
    ) -> None:
        __tracebackhide__ = True
        action = self.actions.get(rule, "off")
        if action == "off" or origin == "own":
            return
        if origin == "library":
            if family in _RECORD_LIBRARY:
                self._report(event, rule, "audit", f"{detail} (by a library)")
            return
        self._report(event, rule, action, detail)
        if action == "deny":
            instead = alternative(rule, subject)
            instead = f" Instead: {instead}." if instead else ""
            message = f"[{rule}] {describe(rule, subject)}.{instead} {allow_hint(rule, action)}"
            raise SandboxPolicyError(rule, message)

    def _report(self, event: str, rule: str, action: str, detail: str) -> None:
        if os.getpid() != self.pid:
            return  # a forked child: the channel belongs to the executor
        detail = detail[:MAX_DETAIL]
        key = (event, rule, action, detail)
        count = self.seen.get(key, 0) + 1
        if len(self.seen) >= MAX_KEYS:
            self.seen.clear()
        self.seen[key] = count
        if count > REPORTS_PER_KEY:
            if count & (count - 1):
                return  # only the 8th, 16th, 32nd ... repeat
            detail = f"{detail} (repeated {count} times)"
        record = {"type": "audit", "event": event, "rule": rule, "action": action, "detail": detail}
        with contextlib.suppress(Exception):  # reporting must never break the cell
            self.report_fn(record)

    def _internal_error(self, event: str, exc: Exception) -> None:
        if self.reported_error:
            return
        self.reported_error = True
        self._report(event, "", "error", f"audit hook error: {type(exc).__name__}: {exc}")

    # -- who did it ------------------------------------------------------------------------

    def _origin(self, family: str) -> str:
        """ "user", "library", or "own" (sandbox_kernel itself): see the module docstring."""
        transparent = _TRANSPARENT[family]
        proxies = _USER_PROXIES.get(family, ())
        functions = _MAGIC_FUNCTIONS if family == "files" else _TRANSPARENT_FUNCTIONS
        magics = family == "files"
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if frame.f_code.co_name in functions and filename.endswith(_TRANSPARENT_FUNCTION_FILE):
                frame = frame.f_back
                continue
            if magics and _MAGICS_DIR in filename and filename.startswith(self.library):
                frame = frame.f_back
                continue
            if filename != _THIS_FILE and filename not in transparent:
                if proxies and filename.endswith(proxies):
                    return "user"
                return self._classify(filename)
            frame = frame.f_back
        return "user"  # nothing but transparent frames: a thread running a bare builtin

    def _classify(self, filename: str) -> str:
        if filename.startswith(self.own):
            # the executor's own work (its channel, its snapshots) is not reported: a
            # report from inside the channel's send would re-enter it
            return "own"
        # Library prefixes first: HOME keeps its real path in the sandbox, and the
        # Python installation may live under it (pyenv, conda in ~).
        if filename.startswith(self.library):
            return "library"
        if filename.startswith(self.user_dirs):
            return "user"
        return "user"

    def _library_file(self, filename: str) -> bool:
        return self._classify(filename) != "user"

    # -- handlers ----------------------------------------------------------------------------

    def _simple(self, rule: str, family: str) -> Callable[[str, tuple[Any, ...]], None]:
        def handler(event: str, args: tuple[Any, ...]) -> None:
            origin = self._origin(family)
            if origin == "own" or (origin == "library" and family not in _RECORD_LIBRARY):
                return
            detail = _detail(event, args)
            self._act(rule, origin, event, f"{event}({detail})", detail=detail, family=family)

        return handler

    def _import(self, event: str, args: tuple[Any, ...]) -> None:
        module = args[0] if args else None
        if type(module) is not str:
            return
        rule = rule_for_module(module)
        if rule is None:
            return
        origin = self._origin("import")
        if origin == "user":
            self._act(rule, origin, event, f"import {module}", detail=module, family="import")

    def _compile(self, event: str, args: tuple[Any, ...]) -> None:
        __tracebackhide__ = True
        source = args[0] if args else None
        filename = args[1] if len(args) > 1 else None
        name = filename if type(filename) is str else ""
        # Own and library files first: the Python environment (and this package) may
        # live under a directory cells may write, such as /tmp or HOME.
        user_file = (
            bool(name) and name.startswith(self.user_files) and self._classify(name) == "user"
        )
        if not user_file and self._origin("compile") != "user" and not self._debugger_command():
            return
        if not isinstance(source, (str, bytes, ast.AST)):
            return
        if isinstance(source, ast.AST):
            findings = check_code(source, self.policy).findings  # no stable key to cache by
        else:
            # a cryptographic digest: with a pinned PYTHONHASHSEED, hash() collisions
            # could be precomputed to reuse a harmless source's verdict
            data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
            key = (hashlib.blake2b(data, digest_size=16).digest(), name)
            cached = self.checked.get(key)
            if cached is None:
                cached = check_code(source, self.policy).findings
                if len(self.checked) >= _CACHE_SIZE:
                    self.checked.clear()
                self.checked[key] = cached
            findings = cached
        if name:
            if len(self.checked_files) >= MAX_KEYS:
                self.checked_files.clear()
            self.checked_files.add(name)
        where = name or "<string>"
        if not user_file and self.actions.get("SKP230", "off") != "off":
            self._report(event, "SKP230", "audit", f"code compiled at run time: {where}")
        for finding in findings:
            detail = f"{where}:{finding.line}: {finding.message}"
            self._report(event, finding.rule_id, finding.action, detail)
        denied = [f for f in findings if f.action == "deny"]
        if denied:
            first = denied[0]
            instead = f" Instead: {first.instead}." if first.instead else ""
            raise SandboxPolicyError(
                first.rule_id,
                f"{where}, line {first.line}, column {first.col}: [{first.rule_id}] "
                f"{first.message}.{instead} {first.hint}",
            )

    def _exec(self, event: str, args: tuple[Any, ...]) -> None:
        code = args[0] if args else None
        if type(code) is not CodeType:
            return
        filename = code.co_filename
        if self._library_file(filename) or self._origin("compile") != "user":
            return
        # Code objects may never have been seen as source (unmarshalled, built by hand).
        # Only dunder names count: co_names mixes attributes with plain variables.
        for attr in _code_names(code):
            rule = rule_for_name(attr)
            if rule is not None and attr.startswith("__"):
                self._act(
                    rule,
                    "user",
                    event,
                    f"exec() of code that uses .{attr}",
                    detail=f"{filename}: .{attr}",
                    family="other",
                )
        if filename not in self.checked_files and self.actions.get("SKP230", "off") != "off":
            self._report(event, "SKP230", "audit", f"exec of a code object from {filename}")

    def _debugger_command(self) -> bool:
        """Whether a debugger (bdb, cmd) on the stack compiles what the cell fed it."""
        frame: FrameType | None = sys._getframe(1)
        debugger = False
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename in _DEBUGGER_FILES:
                debugger = True
            elif debugger and self._classify(filename) == "user":
                return True
            frame = frame.f_back
        return False

    def _marshal(self, event: str, args: tuple[Any, ...]) -> None:
        origin = self._origin("other")
        if origin == "user":
            self._act("SKP233", "user", event, f"{event}()", detail="", family="other")
            return
        # Bytecode the import system (or zipimport) read from a place cells write.
        path = _bytecode_path(sys._getframe(1))
        # the environment's own caches first, by prefix alone (every import reads one)
        if path is not None and self._classify(path) == "user" and self.user_path(path):
            self._act(
                "SKP233",
                "user",
                event,
                f"bytecode read from {path}, which a cell may have written",
                detail=path,
                family="other",
            )

    def user_path(self, path: str) -> bool:
        """Whether cells can write ``path`` (the workspace, /tmp, HOME; not the environment)."""
        real = _real(path)
        return (real + os.sep).startswith(self.user_files) and self._classify(real) == "user"

    def decide(self, rule: str, subject: str, path: str) -> None:
        """The policy's decision on loading ``path`` (imports.py asks; raises on deny)."""
        __tracebackhide__ = True
        self._act(rule, "user", "import", subject, detail=path, family="native")

    def _getattr(self, event: str, args: tuple[Any, ...]) -> None:
        name = args[1] if len(args) > 1 else None
        if type(name) is not str:
            return
        rule = ATTRIBUTE_RULES.get(name)
        if rule is None:
            return
        # "other", not "frames": inspect.signature() reading __code__ is fine
        if self._origin("other") == "user":
            self._act(rule, "user", event, f"the attribute .{name}", detail=name, family="other")

    def _setattr(self, event: str, args: tuple[Any, ...]) -> None:
        name = args[1] if len(args) > 1 else None
        if name == "__code__":
            rule = "SKP233"
        elif name in ("__bases__", "__class__"):
            rule = "SKP220"
        else:
            return
        if self._origin("other") == "user":
            self._act(
                rule, "user", event, f"assignment to .{name}", detail=str(name), family="other"
            )

    def _frames(self, event: str, args: tuple[Any, ...]) -> None:
        if self._origin("frames") == "user":
            self._act("SKP207", "user", event, f"{event}()", detail=event, family="other")

    def _pickle(self, event: str, args: tuple[Any, ...]) -> None:
        if len(args) < 2 or type(args[0]) is not str or type(args[1]) is not str:
            return
        module, name = args[0], args[1]
        if dangerous_global(module, name):
            # the data is the attacker here, whoever unpickles it
            self._act(
                "SKP310",
                "user",
                event,
                f"a pickle that loads {module}.{name}",
                detail=f"{module}.{name}",
                family="other",
            )

    def _open(self, event: str, args: tuple[Any, ...]) -> None:
        path = args[0] if args else None
        if type(path) is str and path.startswith("/proc/") and _PROC_MEM.fullmatch(path):
            # Reading the executor's own memory reaches what frame walking would
            # (the current request's token among it).
            # No library reads it for the cell (license's file list, linecache ...
            # could be pointed at it): only the executor's own code may.
            if self._origin("frames") != "own":
                self._act("SKP207", "user", event, f"open({path!r})", detail=path, family="other")
            return
        flags = args[2] if len(args) > 2 else 0
        if type(flags) is not int or not flags & _WRITE_FLAGS:
            return  # reading is always fine
        self._check_paths(event, [args[0]] if args else [], "open for writing")

    def _path_op(self, *indexes: int) -> Callable[[str, tuple[Any, ...]], None]:
        def handler(event: str, args: tuple[Any, ...]) -> None:
            paths = [args[i] for i in indexes if i < len(args)]
            self._check_paths(event, paths, event, follow=False)

        return handler

    def _check_paths(
        self, event: str, paths: Iterable[Any], what: str, follow: bool = True
    ) -> None:
        for path in paths:
            if type(path) is int:
                continue  # a file descriptor: opened (and checked) already
            resolved = self._resolve(path, follow)
            if resolved is not None and self._writable(resolved):
                if self.notify is not None and len(self.noticed) < len(self.private):
                    self._private_write(resolved)
                continue
            origin = self._origin("files")
            shown = resolved if resolved is not None else _safe_repr(path)
            if resolved is None:
                # a path-like object we will not call into: record, do not decide
                if origin == "user":
                    self._report(event, "SKP240", "audit", f"{what}: {shown}")
                continue
            outside = f", outside the workspace ({self.workspace})" if self.workspace else ""
            self._act(
                "SKP240",
                origin,
                event,
                f"{what} {shown}{outside}",
                detail=f"{what}: {shown}",
                family="files",
            )

    def _private_write(self, path: str) -> None:
        """The first write of the cell to the private /tmp or HOME: a notice, once each."""
        if self.workspace and (path + os.sep).startswith(self.workspace + os.sep):
            return
        for kind, root in self.private.items():
            if kind in self.noticed or not root or root == os.sep:
                continue
            if (path + os.sep).startswith(root + os.sep):
                if self._origin("files") == "user" and self.notify is not None:
                    self.noticed.add(kind)
                    with contextlib.suppress(Exception):
                        self.notify(private_notice(kind, root))
                return

    def _resolve(self, path: object, follow: bool) -> str | None:
        kind = type(path)
        if kind is bytes:
            text = os.fsdecode(path)  # type: ignore[arg-type]
        elif kind is str:
            text = path  # type: ignore[assignment]
        elif kind in (PosixPath, PurePosixPath):
            text = str(path)
        else:
            return None
        try:
            if not os.path.isabs(text):
                text = os.path.join(os.getcwd(), text)
            if follow:
                return os.path.realpath(text)
            head, tail = os.path.split(os.path.normpath(text))
            return os.path.join(os.path.realpath(head), tail)
        except (OSError, ValueError):
            return None

    def _writable(self, path: str) -> bool:
        if path in self.writable_files:
            return True
        if path.startswith(self.code_only) and not path.startswith(self.site_dirs):
            # The environment's code and configuration stay out of reach even when
            # it lives under a writable directory (a virtualenv in /tmp or HOME).
            return False
        return any(path == root or path.startswith(root + os.sep) for root in self.writable)


def _real(path: str) -> str:
    try:
        return os.path.realpath(path) if path else ""
    except (OSError, ValueError):
        return path


def _detail(event: str, args: tuple[Any, ...]) -> str:
    if event.startswith("ctypes.") or event == "code.__new__":
        shown = args[:1] if event in ("ctypes.dlopen", "ctypes.dlsym") else ()
    elif event in ("marshal.loads", "marshal.load", "function.__new__"):
        shown = ()
    elif event.startswith("socket."):
        shown = args[1:2]  # the address, not the socket object
    else:
        shown = args[:2]
    return ", ".join(_safe_repr(a) for a in shown)


def _bytecode_path(frame: FrameType | None) -> str | None:
    """Where the bytecode being unmarshalled comes from, when the import system reads it."""
    depth = 0
    while frame is not None and depth < 8:
        name = frame.f_code.co_name
        if name == "_compile_bytecode":
            path = frame.f_locals.get("bytecode_path")
            return path if type(path) is str else None
        if name == "_unmarshal_code":
            path = frame.f_locals.get("pathname")  # <archive>/<member>
            return path if type(path) is str else None
        frame = frame.f_back
        depth += 1
    return None


def _code_names(code: CodeType) -> set[str]:
    """Every name and attribute the code object (and the code nested in it) uses."""
    names: set[str] = set()
    pending = [code]
    budget = 1000
    while pending and budget:
        budget -= 1
        current = pending.pop()
        names.update(current.co_names)
        pending.extend(c for c in current.co_consts if type(c) is CodeType)
    return names
