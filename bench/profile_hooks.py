"""Timing hooks for ``bench/profile_cell.py``: patched into the two sides of a sandbox kernel.

Not part of the kernel: ``profile_cell.py`` starts the trusted kernel through
``kernel_main()`` (instead of ``python -m sandbox_kernel``), which wraps the methods
on a cell's path with timestamps and writes one JSON line per shell request to
``$SANDBOX_PROFILE_TRACE``. The launcher is started with ``launcher_main()`` so that
the executor, forked from it, carries the executor-side hooks; it reports its
timestamps in the execute_reply's ``stats`` (the relay keeps numbers and short
strings there), which the kernel side copies into the same line.

Every timestamp is CLOCK_MONOTONIC in nanoseconds: one clock for all processes
(the sandbox has no time namespace). Kept free of heavy imports: this module is
imported by the launcher before it forks the executor, and whatever it imports
would be in every executor's memory.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
from typing import Any

now = time.monotonic_ns

# -- the trusted kernel ------------------------------------------------------------------

_spans: list[tuple[str, int, int]] = []
_points: list[tuple[str, int]] = []
_extra: dict[str, Any] = {}


def _wrap(owner: Any, attr: str, name: str | None = None) -> None:
    """Record (name, start, end) for every call of owner.attr (sync or async)."""
    original = getattr(owner, attr)
    label = name or attr
    if inspect.iscoroutinefunction(original):

        @functools.wraps(original)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = now()
            try:
                return await original(*args, **kwargs)
            finally:
                _spans.append((label, t0, now()))

        setattr(owner, attr, async_wrapper)
    else:

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = now()
            try:
                return original(*args, **kwargs)
            finally:
                _spans.append((label, t0, now()))

        setattr(owner, attr, wrapper)


def _patch_base(trace_path: str) -> None:
    """What both kernels share: ipykernel's dispatch, execute_request and session.send."""
    import json

    from ipykernel.kernelbase import Kernel as BaseKernel

    out = open(trace_path, "a", buffering=1)  # noqa: SIM115 - the kernel's lifetime

    dispatch = BaseKernel.dispatch_shell

    async def dispatch_shell(self: Any, msg: Any, *args: Any, **kwargs: Any) -> Any:
        _spans.clear()
        _points.clear()
        _extra.clear()
        t0 = now()
        try:
            return await dispatch(self, msg, *args, **kwargs)
        finally:
            t1 = now()
            record = {"t0": t0, "t1": t1, "spans": list(_spans), "points": list(_points)}
            record.update(_extra)
            out.write(json.dumps(record) + "\n")

    BaseKernel.dispatch_shell = dispatch_shell  # type: ignore[method-assign]

    session_send = None

    def patch_session(kernel_self: Any) -> None:
        nonlocal session_send
        if session_send is not None:
            return
        session = kernel_self.session
        session_send = session.send

        def send(stream: Any, msg_or_type: Any, *args: Any, **kwargs: Any) -> Any:
            t0 = now()
            try:
                return session_send(stream, msg_or_type, *args, **kwargs)
            finally:
                kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type["msg_type"]
                content = args[0] if args else kwargs.get("content")
                if kind == "status" and isinstance(content, dict):
                    kind = f"status:{content.get('execution_state')}"
                _spans.append((f"send:{kind}", t0, now()))

        session.send = send

    execute_request = BaseKernel.execute_request

    async def execute_request_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        patch_session(self)
        t0 = now()
        try:
            return await execute_request(self, *args, **kwargs)
        finally:
            _spans.append(("execute_request", t0, now()))

    BaseKernel.execute_request = execute_request_wrapper  # type: ignore[method-assign]


def _patch_kernel(trace_path: str) -> None:
    _patch_base(trace_path)
    from sandbox_kernel.isolation import cgroups
    from sandbox_kernel.kernel import cellrun, handlers, hygiene, runner, sandbox
    from sandbox_kernel.log import AuditLog
    from sandbox_kernel.policy.check import CellChecker
    from sandbox_kernel.relay.publisher import Publisher

    if os.environ.get("SANDBOX_PROFILE_BEFORE") == "1":
        # The ablation: the kernel side as it was before the per-cell work of issue 14
        # (every scan in a thread, every cell's source checked again).
        from sandbox_kernel.policy import check_cell

        sandbox.INLINE_SCAN_S = 0.0  # type: ignore[attr-defined]
        CellChecker.check = lambda self, source: check_cell(source, self.settings)  # type: ignore[method-assign]
    _wrap(handlers.SandboxKernel, "do_execute")
    _wrap(handlers.SandboxKernel, "finish_metadata")
    _wrap(handlers.SandboxKernel, "interrupt_request")
    _wrap(runner.ExecutorProcess, "interrupt", "executor.interrupt")
    _wrap(CellChecker, "check", "policy.check_cell")
    _wrap(sandbox.Sandbox, "begin_cell_scan", "_begin_cell_scan")
    _wrap(sandbox.Sandbox, "workspace_hygiene", "_workspace_hygiene")
    _wrap(cellrun.CellRun, "record", "_record_cell")
    _wrap(cellrun.CellRun, "_reply", "_reply_for")
    _wrap(hygiene.WorkspaceGuard, "begin_cell", "guard.begin_cell (thread)")
    _wrap(hygiene.WorkspaceGuard, "scan", "guard.scan (thread)")
    _wrap(Publisher, "begin_cell", "publisher.begin_cell")
    _wrap(Publisher, "end_cell", "publisher.end_cell")
    _wrap(Publisher, "publish", "publisher.publish")
    _wrap(AuditLog, "record_cell", "audit.record_cell")
    _wrap(runner.ExecutorProcess, "execute", "executor.execute")
    _wrap(runner.ExecutorProcess, "send_raw", "relay.send")
    _wrap(runner.ExecutorProcess, "reap_cell_processes")
    _wrap(runner.ExecutorProcess, "tree_size")
    for name in ("reset_peak", "pids_limit_hits", "memory_peak", "oom_kills"):
        if hasattr(cgroups.Cgroup, name):
            _wrap(cgroups.Cgroup, name, f"cgroup.{name}")

    dispatch_frame = runner.ExecutorProcess._dispatch

    def _dispatch(self: Any, message: dict[str, Any]) -> None:
        kind = message.get("type")
        _points.append((f"frame:{kind}", now()))
        if kind == "execute_reply":
            stats = message.get("stats") or {}
            _extra["executor"] = stats.get("trace")
            _extra["executor_t0"] = stats.get("trace_t0")
        return dispatch_frame(self, message)

    runner.ExecutorProcess._dispatch = _dispatch  # type: ignore[method-assign]

    # The launcher (and so the executor forked from it) carries the executor hooks.
    from sandbox_kernel.kernel import spawn

    real_popen = spawn.subprocess.Popen

    class Popen(real_popen):  # type: ignore[misc, valid-type]
        def __init__(self, args: list[str], *rest: Any, **kwargs: Any) -> None:
            if "-m" in args:
                at = args.index("-m")
                here = os.path.dirname(os.path.abspath(__file__))
                code = (
                    f"import sys; sys.path.insert(0, {here!r}); "
                    "import profile_hooks; profile_hooks.launcher_main()"
                )
                args = [*args[:at], "-c", code, *args[at + 2 :]]
            super().__init__(args, *rest, **kwargs)

    class Shim:
        def __getattr__(self, name: str) -> Any:
            return Popen if name == "Popen" else getattr(spawn.subprocess_real, name)

    spawn.subprocess_real = spawn.subprocess  # type: ignore[attr-defined]
    spawn.subprocess = Shim()  # type: ignore[assignment]


def kernel_main() -> None:
    """``python -I bench/profile_hooks.py -f CONNECTION_FILE``: the kernel, with hooks."""
    if sys.argv[1:2] == ["--stock"]:
        del sys.argv[1]
        stock_main()
        return
    _patch_kernel(os.environ["SANDBOX_PROFILE_TRACE"])
    from sandbox_kernel.__main__ import main

    sys.argv[0] = "sandbox_kernel"
    main()


def stock_main() -> None:
    """Stock ipykernel with the same dispatch hooks, and IPython's run_cell timed."""
    _patch_base(os.environ["SANDBOX_PROFILE_TRACE"])
    from IPython.core.interactiveshell import InteractiveShell

    _wrap(InteractiveShell, "run_cell_async", "ipython.run_cell")
    from ipykernel import kernelapp

    sys.argv[0] = "ipykernel_launcher"
    kernelapp.launch_new_instance()


# -- the executor (patched in the launcher, before the executor is forked) -------------------

_e: dict[str, int] = {}
_prev: dict[str, int] = {}


def _minflt() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _patch_executor() -> None:
    from sandbox_kernel.child import child, shell, snapshot
    from sandbox_kernel.child.channel import Channel

    execute = child.Executor.execute

    def execute_wrapper(self: Any, command: dict[str, Any]) -> None:
        _prev.clear()
        _prev.update({k: v for k, v in _e.items() if k.startswith("r_")})
        _e.clear()
        _e["in"] = now()
        _e["flt_in"] = _minflt()
        return execute(self, command)

    child.Executor.execute = execute_wrapper  # type: ignore[method-assign]

    run_cell = shell.ExecutorShell.run_cell

    def run_cell_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _e["run0"] = now()
        _e["flt_run0"] = _minflt()
        try:
            return run_cell(self, *args, **kwargs)
        finally:
            _e["run1"] = now()
            _e["flt_run1"] = _minflt()

    shell.ExecutorShell.run_cell = run_cell_wrapper  # type: ignore[method-assign]

    usage_init = child._Usage.__init__

    def usage_init_wrapper(self: Any) -> None:
        _e["usage0"] = now()
        usage_init(self)
        _e["usage1"] = now()

    child._Usage.__init__ = usage_init_wrapper  # type: ignore[method-assign]

    finish = child._Usage.finish

    def finish_wrapper(self: Any) -> dict[str, Any]:
        stats = finish(self)
        _e["finish"] = now()
        t0 = _e["in"]
        fields = [
            f"{k}={(v - t0) // 1000}"
            for k, v in _e.items()
            if k != "in" and not k.startswith("flt")
        ]
        fields += [
            f"{k}={v - _e['flt_in']}"
            for k, v in _e.items()
            if k.startswith("flt_") and k != "flt_in"
        ]
        fields += [f"prev_{k}={v}" for k, v in _prev.items() if k != "r_sent"]
        stats["trace"] = ";".join(fields)[:300]
        stats["trace_t0"] = t0
        return stats

    child._Usage.finish = finish_wrapper  # type: ignore[method-assign]

    send = Channel.send

    def send_wrapper(self: Any, message: dict[str, Any], **kwargs: Any) -> None:
        kind = message.get("type")
        if kind == "execute_result":
            _e["result_send"] = now()
        if kind == "execute_reply":
            _e["reply_send"] = now()
        send(self, message, **kwargs)
        if kind == "execute_reply":
            _e["r_sent"] = now()

    Channel.send = send_wrapper  # type: ignore[method-assign]

    refresh = child.Executor.refresh_snapshot

    def refresh_wrapper(self: Any) -> None:
        t0 = now()
        flt = _minflt()
        refresh(self)
        # (in the executor; a promoted snapshot returns here too, ignored)
        base = _e.get("r_sent", t0)
        _e["r_refresh_us"] = (now() - t0) // 1000
        _e["r_refresh_start_us"] = (t0 - base) // 1000
        _e["r_refresh_flt"] = _minflt() - flt

    child.Executor.refresh_snapshot = refresh_wrapper  # type: ignore[method-assign]

    drop = snapshot.Snapshots.drop

    def drop_wrapper(self: Any) -> None:
        t0 = now()
        drop(self)
        _e["r_drop_us"] = (now() - t0) // 1000

    snapshot.Snapshots.drop = drop_wrapper  # type: ignore[method-assign]

    take = snapshot.Snapshots.take

    def take_wrapper(self: Any) -> bool:
        t0 = now()
        promoted = take(self)
        if not promoted:
            _e["r_fork_us"] = (now() - t0) // 1000
        return promoted

    snapshot.Snapshots.take = take_wrapper  # type: ignore[method-assign]


def launcher_main() -> None:
    _patch_executor()
    from sandbox_kernel.launcher.launch import main

    main()


if __name__ == "__main__":
    kernel_main()
