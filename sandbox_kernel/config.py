"""Every setting of sandbox-kernel, its default and why, in one place.

Settings are traitlets ``Configurable`` classes, so they can be set the way the
rest of Jupyter is configured: ``sandbox_kernel_config.py``/``.json`` in a
Jupyter config directory, arguments in ``kernel.json``, or the command line
(``--Limits.memory_limit_mb=2048``). Booleans that weaken the sandbox start
with ``allow_`` and default to ``False``.

SECURITY.md quotes these defaults; ``tests/unit/test_config.py`` checks that the
two agree.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, CaselessStrEnum, Dict, Float, Int, List, TraitError, Unicode, validate
from traitlets.config import Configurable

from .framing import DEFAULT_MAX_MESSAGE_BYTES
from .levels import ISOLATION_LEVELS, level_rank
from .network.hosts import validate_entries
from .policy.rules import ACTIONS, GROUPS, PRESET_NAMES, RULES
from .policy.settings import check_overrides
from .relay.gate import ACTIVE_CONTENT_MODES
from .relay.widgets import CORE_WIDGET_MODULES, WIDGET_TARGETS

__all__ = [
    "ISOLATION_LEVELS",
    "PRESETS",
    "Isolation",
    "Limits",
    "Output",
    "Policy",
    "level_rank",
]

MECHANISM_POLICY = ["required", "auto", "disabled"]

# How an admin lock orders each setting (lock.py reads the ``lock`` tag of every trait):
# a tuple ranks the values strictest first; "smaller" (0 is the strictest),
# "smaller_or_unlimited" (0 means no limit: the loosest), "true" / "false" (which one
# is stricter), "subset" / "superset" (of a list), "equal" (only the locked value),
# "rules" (Policy.rules, per rule); False: an admin may not lock it. A setting of
# ours without a ``lock`` tag is refused when the kernel is imported.
MECHANISM_ORDER = tuple(MECHANISM_POLICY)
PRESET_ORDER = ("classroom", "standard", "permissive")
# Rendered by JupyterLab's own Vega extension and by plotly's: data, not code.
DEFAULT_RENDERER_MIME_TYPES = (
    "application/vnd.vega.v5+json",
    "application/vnd.vegalite.v5+json",
    "application/vnd.vegalite.v4+json",
    "application/vnd.plotly.v1+json",
    # Data for programs, not for a frontend: the answers examples/autograde reads back
    # (no frontend has a renderer for it).
    "text/x-sandbox-grader-answer",
)


# Files and directories that tools outside the sandbox run or trust (Isolation.control_files).
CONTROL_FILES = (
    ".git",
    ".hg",
    ".gitattributes",
    ".gitmodules",
    ".ipynb_checkpoints",
    ".jupyter",
    ".ipython",
    ".vscode",
    ".idea",
    ".envrc",
    ".direnv",
    ".pre-commit-config.yaml",
    "pytest.ini",
    "tox.ini",
)
# Modules that shadow launchers and tools (Isolation.shadow_modules).
SHADOW_MODULES = (
    "ipykernel_launcher.py",
    "ipykernel",
    "ipykernel.py",
    "pip",
    "pip.py",
    "pytest.py",
    "_pytest",
    "conftest.py",
    "sitecustomize.py",
    "usercustomize.py",
    "__pycache__",
    "site-packages/*.pth",
    "dist-packages/*.pth",
    "jupyter.py",
    "jupyter_core",
    "jupyter_client",
)


class Isolation(Configurable):
    """How the executor is confined (the OS sandbox)."""

    level = CaselessStrEnum(
        ["auto", *ISOLATION_LEVELS],
        default_value="auto",
        help="""Isolation level to use. 'auto' probes the host at start and picks the
        strongest level it supports: 'namespaces' (user, pid, net, mount, ipc, uts
        namespaces with a read-only filesystem view), then 'landlock' (Landlock
        filesystem and TCP rules with seccomp, for hosts that block namespaces such
        as default Docker), then 'none' (rlimits only, allowed only when
        required_isolation is 'none').""",
    ).tag(config=True, lock=(*ISOLATION_LEVELS, "auto"))

    required_isolation = CaselessStrEnum(
        list(ISOLATION_LEVELS),
        default_value="landlock",
        help="""The weakest level under which cells may run. Below it the kernel refuses
        every cell with an error that names the missing layer. Set to 'none' only to
        run explicitly without a sandbox.""",
    ).tag(config=True, lock=ISOLATION_LEVELS)

    workspace = Unicode(
        "",
        help="""Host directory the cells see as their working directory. Empty means the
        directory the kernel was started in, which Jupyter sets to the notebook's
        directory.""",
    ).tag(config=True, lock="equal")

    workspace_writable = Bool(
        True,
        help="Whether cells may write in the workspace. It is the only writable host path.",
    ).tag(config=True, lock="false")

    extra_mounts = List(
        Unicode(),
        default_value=[],
        help="""More host paths the sandbox may see, each 'PATH:ro' or 'PATH:rw'
        (for example a shared data set: '/srv/data:ro').""",
    ).tag(config=True, lock="subset")

    hidden_paths = List(
        Unicode(),
        default_value=[],
        help="""Host paths cells must not see at all, even inside the workspace or an
        extra mount: they appear empty (namespaces level) or cannot be opened (landlock
        level). For graders: the gradebook, the hidden tests, other submissions.""",
    ).tag(config=True, lock="superset")

    control_files = List(
        Unicode(),
        default_value=list(CONTROL_FILES),
        help="""Names (shell patterns, matched at any depth of the workspace) of files and
        directories that tools outside the sandbox run or trust: a repository's .git
        (core.fsmonitor and hooks run on 'git status'), .vscode, .envrc ... A cell cannot
        leave them changed: after each cell, before its reply, the kernel puts back those
        that existed when it started and removes new ones, and tells the user. Inside .git
        only what can run code is guarded (config, hooks, info ...; not objects, refs or
        the index). .ipynb_checkpoints belongs to the Jupyter server: only links and
        special files are removed there. Extend it in a config file with
        c.Isolation.control_files.extend([...]).""",
    ).tag(config=True, lock="superset")

    shadow_modules = List(
        Unicode(),
        default_value=list(SHADOW_MODULES),
        help="""Names (shell patterns, at any depth; a pattern with a slash matches that
        many trailing path components, as site-packages/*.pth) of modules that shadow a
        launcher or a tool for programs started in that directory outside the sandbox:
        the next ordinary kernel runs ipykernel_launcher.py from its working directory,
        'python -m pip' runs pip/, pytest runs conftest.py, a virtualenv in the project
        runs its site-packages/*.pth. Treated like control_files: put back or removed
        after each cell, and reported. Ordinary .py files (and model.pth weights) stay
        writable.""",
    ).tag(config=True, lock="superset")

    allow_network = Bool(
        False,
        help="""Let cells use the host's network. Off: the executor has its own network
        namespace with only loopback (namespaces level) or cannot create sockets
        (landlock level).""",
    ).tag(config=True, lock="false")

    allowed_hosts = List(
        Unicode(),
        default_value=[],
        help="""Hosts cells may reach through the kernel's egress proxy, when allow_network
        is off: 'example.org', '*.example.org' (names below it), an IP literal, each
        optionally with ':port' (default ports 80 and 443), or 'pypi' for the hosts of the
        package index pip is configured to use here (a site mirror if pip has one).
        The proxy resolves names itself and refuses loopback, private, link-local and
        metadata addresses. Empty: no network.""",
    ).tag(config=True, lock="subset")

    network_max_connections = Int(
        16,
        min=1,
        help="""Connections through the egress proxy a sandbox may hold at once (with
        allowed_hosts); more are refused at once with a message naming this setting.""",
    ).tag(config=True, lock="smaller")

    network_max_mb_per_cell = Int(
        2048,
        min=1,
        help="""Bytes, in MiB, one cell may move through the egress proxy (both ways,
        all connections); past it its connections are closed and new ones refused.""",
    ).tag(config=True, lock="smaller")

    package_dir = Unicode(
        "",
        help="""Host directory where '%pip install' puts packages, kept across kernel
        restarts (a per-workspace directory, writable by the kernel's user). Empty: a
        directory in the sandbox's private space, which lives as long as the kernel.""",
    ).tag(config=True, lock="equal")

    tmp_size_mb = Int(
        256,
        min=1,
        help="Size of the private tmpfs that holds /tmp and HOME inside the sandbox.",
    ).tag(config=True, lock="smaller")

    seccomp = CaselessStrEnum(
        MECHANISM_POLICY,
        default_value="required",
        help="""The seccomp system-call allow-list. 'required': cells do not run without
        it; 'auto': used when available; 'disabled': never (for debugging only).""",
    ).tag(config=True, lock=MECHANISM_ORDER)

    landlock = CaselessStrEnum(
        MECHANISM_POLICY,
        default_value="auto",
        help="""Landlock rules. At the 'landlock' level they are the filesystem boundary
        and always required; at the 'namespaces' level they are defence in depth.""",
    ).tag(config=True, lock=MECHANISM_ORDER)

    cgroups = CaselessStrEnum(
        MECHANISM_POLICY,
        default_value="auto",
        help="""A cgroup of its own for the executor (memory and process limits, kill on
        shutdown). Used when the host delegates one; rlimits otherwise.""",
    ).tag(config=True, lock=MECHANISM_ORDER)

    sandbox_uid_base = Int(
        1_500_000_000,
        min=65536,
        max=4_000_000_000,
        help="""When the kernel runs as root, cells run as a host uid from this unused range
        (never as host root). Files they create in the workspace are owned by the
        workspace's owner through an id-mapped mount.""",
    ).tag(config=True, lock=False)

    env_passthrough = List(
        Unicode(),
        default_value=[],
        help="""Extra environment variables passed to cells, on top of the built-in
        allow-list. Names that look like secrets (*TOKEN*, *KEY*, *SECRET*,
        *PASSWORD*, JUPYTERHUB_*) are never passed.""",
    ).tag(config=True, lock="subset")

    @validate("hidden_paths")
    def _check_hidden(self, proposal: Any) -> list[str]:
        for path in proposal["value"]:
            if not path.startswith("/"):
                raise TraitError(f"hidden_paths entry {path!r} must be an absolute path")
        return list(proposal["value"])

    @validate("allowed_hosts")
    def _check_allowed_hosts(self, proposal: Any) -> list[str]:
        try:
            return validate_entries(proposal["value"])
        except ValueError as exc:
            raise TraitError(f"Isolation.allowed_hosts: {exc}") from None

    @validate("package_dir")
    def _check_package_dir(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and not value.startswith("/"):
            raise TraitError(f"Isolation.package_dir {value!r} must be an absolute path")
        return value

    @validate("extra_mounts")
    def _check_mounts(self, proposal: Any) -> list[str]:
        for item in proposal["value"]:
            path, sep, mode = item.rpartition(":")
            if not sep or mode not in {"ro", "rw"} or not path.startswith("/"):
                raise TraitError(
                    f"extra_mounts entry {item!r} must be an absolute path followed by "
                    "':ro' or ':rw', for example '/srv/data:ro'"
                )
        return list(proposal["value"])


class Limits(Configurable):
    """Resource limits for the executor and for each cell."""

    wall_time_limit_s = Float(
        0.0,
        min=0.0,
        help="""Wall-clock time a cell may run, in seconds; 0 means no limit. When it is
        exceeded the cell is interrupted, then killed after interrupt_grace_s.""",
    ).tag(config=True, lock="smaller_or_unlimited")

    interrupt_grace_s = Float(
        3.0,
        min=0.1,
        help="""How long a cell has to stop after an interrupt before the executor is
        killed (a C loop or a cell that ignores SIGINT never stops on its own).""",
    ).tag(config=True, lock="smaller")

    memory_limit_mb = Int(
        0,
        min=0,
        help="""Memory the executor may use, in MiB; 0 means half of the host's memory.
        Enforced with a cgroup when one is available, else with RLIMIT_AS (which
        counts address space, not memory, and is looser).""",
    ).tag(config=True, lock="smaller_or_unlimited")

    max_processes = Int(
        512,
        min=8,
        help="Processes and threads the executor may have at once (pids cgroup or RLIMIT_NPROC).",
    ).tag(config=True, lock="smaller")

    max_open_files = Int(1024, min=32, help="RLIMIT_NOFILE for the executor.").tag(
        config=True, lock="smaller"
    )

    max_file_size_mb = Int(
        1024, min=1, help="Largest file a cell may write, in MiB (RLIMIT_FSIZE)."
    ).tag(config=True, lock="smaller")

    workspace_quota_mb = Int(
        10240,
        min=0,
        help="""How much the workspace may grow during the kernel's life, in MiB; 0 means
        no quota. The workspace is on the host's disk, which every user of a hub shares,
        and the per-file limit alone does not bound many files. The default (10 GiB)
        leaves room for the data sets and outputs of ordinary notebooks; the classroom
        preset sets 1024. The kernel measures the workspace from outside the sandbox
        and stops a cell that makes it grow past the quota (DiskQuotaExceeded); files
        uploaded or saved through the Jupyter server count towards the growth too,
        but only a cell that writes is stopped. Large files are bounded at once
        (RLIMIT_FSIZE is never above the quota); see SECURITY.md for the margin.""",
    ).tag(config=True, lock="smaller_or_unlimited")

    cpu_share = Float(
        0.0,
        min=0.0,
        help="""CPU cores the whole executor may use at once (every process and thread it
        starts, background threads included), for example 1.0 or 0.5; 0 means no share.
        On a shared machine one notebook's busy loop otherwise slows every other user's
        kernel; the classroom preset sets 1.0. Enforced with the cgroup cpu controller
        (cpu.max, or CFS bandwidth on cgroup v1) where the host delegates one; where it
        does not, %sandbox and the level report say the share is not enforced.""",
    ).tag(config=True, lock="smaller_or_unlimited")

    cpu_time_limit_s = Float(
        0.0,
        min=0.0,
        help="CPU seconds a cell may use; 0 means no limit.",
    ).tag(config=True, lock="smaller_or_unlimited")

    blas_threads = Int(
        4,
        min=1,
        help="""Upper bound for OpenBLAS/OpenMP/MKL thread pools in the executor
        (each thread costs address space, and forking while one runs can deadlock).""",
    ).tag(config=True, lock=False)

    rollback = Bool(
        True,
        help="""Before each cell, keep a copy-on-write snapshot of the executor; if the cell
        crashes, runs out of memory, times out or has to be killed, the snapshot takes
        over and the state is as it was before the cell. Off: the executor restarts
        empty after such a cell.""",
    ).tag(config=True, lock="equal")

    snapshot_max_mb = Int(
        0,
        min=0,
        help="""Skip the snapshot when the executor holds more memory than this, in MiB
        (copy-on-write may double it while the cell runs); 0 means half the memory limit.""",
    ).tag(config=True, lock=False)

    snapshot_copy_ahead_mb = Int(
        4,
        min=0,
        help="""After each cell's snapshot is taken, copy up to this many MiB of the pages the
        cells have been writing, while the executor waits for the next one, so that the next
        cell does not pay for copying them (rollback's copy-on-write, about 2 ms of a trivial
        cell). It pays where there is a pause between cells; with cells sent back to back
        (nbclient, papermill, an autograder) it gains nothing and can cost up to about 5%
        of a trivial cell (bench/README.md), so such runs may set 0. The copies are held
        as long as the snapshot is; 0 turns this off.""",
    ).tag(config=True, lock=False)

    kill_cell_processes = Bool(
        False,
        help="""End every process a cell started when the cell ends (background servers,
        daemons). Processes are always ended when a cell hits the process limit.""",
    ).tag(config=True, lock="true")

    kernel_memory_mb = Int(
        2048,
        min=256,
        help="""Memory the trusted kernel process itself may use, in MiB (RLIMIT_DATA).
        It decodes every frame the executor sends, outside the sandbox's memory limit;
        a frame whose decoding would not fit is dropped with a notice instead.""",
    ).tag(config=True, lock=False)

    startup_timeout_s = Float(60.0, min=1.0, help="How long the executor may take to start.").tag(
        config=True, lock=False
    )


# The floor under every preset and configuration: no setting may lift an output
# cap past these (the caps protect the trusted kernel and every client).
OUTPUT_CEILINGS: dict[str, Any] = {
    "max_message_bytes": 256 * 1024 * 1024,
    "max_cell_output_bytes": 1024 * 1024 * 1024,
    "max_messages_per_s": 10_000.0,
    "max_comm_bytes": 1024 * 1024 * 1024,
    "max_comm_messages_per_s": 10_000.0,
}


class Output(Configurable):
    """What the trusted relay lets through to the frontend."""

    frame_deadline_s = Float(
        10.0,
        min=0.5,
        help="Time within which a started frame must be complete (guards against a stalled child).",
    ).tag(config=True, lock=False)

    max_message_bytes = Int(
        DEFAULT_MAX_MESSAGE_BYTES,
        min=1024,
        max=OUTPUT_CEILINGS["max_message_bytes"],
        help="""Largest single output relayed to the frontend (a stream chunk, an image, an
        HTML table), serialised as it is sent: data, metadata, MIME types and
        buffers. Larger ones are replaced by a notice. It also sets the largest frame
        the kernel reads from the executor (a third more, for base64 buffers).""",
    ).tag(config=True, lock="smaller")

    max_cell_output_bytes = Int(
        64 * 1024 * 1024,
        min=1024,
        max=OUTPUT_CEILINGS["max_cell_output_bytes"],
        help="""Output one cell may send in total. Past it the cell keeps running but its
        output is cut off with a notice, so an endless print loop cannot freeze the
        browser or fill nbclient's memory.""",
    ).tag(config=True, lock="smaller")

    max_messages_per_s = Float(
        1000.0,
        min=1.0,
        max=OUTPUT_CEILINGS["max_messages_per_s"],
        help="""Output messages per second relayed to the frontend; faster output is dropped
        with a notice (display updates keep their latest value).""",
    ).tag(config=True, lock="smaller")

    max_comm_bytes = Int(
        64 * 1024 * 1024,
        min=1024,
        max=OUTPUT_CEILINGS["max_comm_bytes"],
        help="""Widget (comm) traffic one cell may send to the frontend in total, counted
        apart from its other output. Past it comm messages are dropped with a notice.""",
    ).tag(config=True, lock="smaller")

    max_comm_messages_per_s = Float(
        1000.0,
        min=1.0,
        max=OUTPUT_CEILINGS["max_comm_messages_per_s"],
        help="Widget (comm) messages per second relayed to the frontend.",
    ).tag(config=True, lock="smaller")

    active_content = CaselessStrEnum(
        list(ACTIVE_CONTENT_MODES),
        default_value="isolate",
        help="""What happens to active output: HTML or SVG with scripts, event handlers,
        javascript: URLs, forms, <base>, <meta refresh> or iframes; JavaScript outputs;
        Markdown with raw HTML. JupyterLab renders a live session's outputs in the
        Jupyter server's origin, where such content acts with the user's authority.
        'isolate' renders it in a sandboxed iframe with an opaque origin (scripts run,
        interactive plots work; no cookies, page or server API); 'sanitize' removes the
        active parts (nh3 allow-list) and drops JavaScript (classroom preset); 'drop'
        removes active outputs. Passive HTML (pandas tables) is relayed unchanged in
        every mode.""",
    ).tag(config=True, lock=("drop", "sanitize", "isolate"))

    renderer_mime_types = List(
        Unicode(),
        default_value=list(DEFAULT_RENDERER_MIME_TYPES),
        help="""MIME types relayed besides the built-in passive ones (text, images, JSON,
        PDF): types that frontend extensions render from data (Vega, Vega-Lite, plotly's
        figure JSON), whose renderers run in the notebook page, and data types for
        programs (the autograder's answers). Any other MIME type is dropped with a
        notice: add a type here only if no frontend renders it as code.""",
    ).tag(config=True, lock="subset")

    comm_targets = List(
        Unicode(),
        default_value=list(WIDGET_TARGETS),
        help="""Comm targets a cell may open in the frontend. ipywidgets' targets by
        default; a comm to any other target is refused (the frontend code behind a
        target acts on what the cell sends, in the notebook page). The refusal is
        recorded in the audit log and counted in %sandbox's last cell, not printed in
        the cell: a frontend with no handler for a target ignores it silently too.""",
    ).tag(config=True, lock="subset")

    widget_modules = List(
        Unicode(),
        default_value=list(CORE_WIDGET_MODULES),
        help="""Widget model and view modules whose JavaScript may render a cell's
        widgets: ipywidgets' own by default. A widget from any other module is refused
        with a notice. Add a library's module to trust its frontend code with what cells
        send it, for example 'anywidget' (plotly's FigureWidget), 'bqplot' or
        'jupyter-leaflet'.""",
    ).tag(config=True, lock="subset")

    isolated_library_bytes = Int(
        16 * 1024 * 1024,
        min=0,
        help="""Library code a session emitted (bokeh's output_notebook, plotly's
        init_notebook_mode) that is replayed in later isolated frames, which are
        separate documents; at most this many bytes per kernel.""",
    ).tag(config=True, lock="smaller")

    sanitize_html = Bool(
        False,
        help="""Deprecated: True means at least Output.active_content = 'sanitize'.""",
    ).tag(config=True, lock="true")

    drop_javascript = Bool(
        False,
        help="""Deprecated: True means at least Output.active_content = 'sanitize'.""",
    ).tag(config=True, lock="true")

    drop_frontend_payloads = Bool(
        False,
        help="""Drop payloads that change the notebook: set_next_input that replaces the
        cell's code, and edit. On in the classroom preset. (The pager's content is
        always reduced to text.)""",
    ).tag(config=True, lock="true")

    def effective_active_content(self) -> str:
        """active_content, made at least 'sanitize' by the deprecated booleans."""
        mode = str(self.active_content).lower()
        if (self.sanitize_html or self.drop_javascript) and mode == "isolate":
            return "sanitize"
        return mode


class Policy(Configurable):
    """What cells may do: the static checks and the executor's runtime audit hooks.

    Each rule has a stable id (SKP101 ...) and belongs to a group; its action is
    "deny" (the cell is refused, or the operation fails while it runs), "warn" (it runs
    and the user is told), "audit" (it runs and the audit log records it) or "off".
    """

    preset = CaselessStrEnum(
        list(PRESET_NAMES),
        default_value="standard",
        help="""Default action of every rule. 'standard' denies native code, interpreter
        internals and attempts to hide code from the checks, and lets ordinary
        notebooks run unchanged ('!ls', %%bash and subprocess are recorded or warned
        about). 'classroom' also denies shell escapes, processes, sockets, dynamic code
        and dunder walking. 'permissive' records almost everything and denies little.""",
    ).tag(config=True, lock=PRESET_ORDER)

    rules = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        default_value={},
        help=f"""Overrides on top of the preset: a rule id or a group name mapped to one of
        {", ".join(ACTIONS)}. A rule's own entry beats its group's. Groups:
        {", ".join(sorted(GROUPS))}. Example: {{'SKP201': 'warn', 'shell': 'deny'}}.""",
    ).tag(config=True, lock="rules")

    runtime_hooks = Bool(
        True,
        help="""Install PEP 578 audit hooks in the executor before any cell runs, so that
        the rules also hold for code the static check cannot see (computed imports,
        decoded payloads, files written then imported). Native code can bypass audit
        hooks; the OS sandbox remains the boundary.""",
    ).tag(config=True, lock="true")

    audit_log = Unicode(
        "default",
        help="""JSON-lines audit log: one record per cell and per violation (time, kernel,
        user, cell hash, verdict, rule ids, isolation level, resource use); never the
        cell source, the HMAC key or tokens. 'default' is
        <jupyter data dir>/sandbox_kernel/audit.jsonl, which cells cannot reach; an
        empty string writes to the kernel log only.""",
    ).tag(config=True, lock="equal")

    audit_log_max_mb = Int(
        64,
        min=1,
        help="""Size at which the audit log file is rotated, in MiB: it becomes
        audit.jsonl.1 (replacing an older one) and a new file starts, so the log takes
        at most about twice this on disk.""",
    ).tag(config=True, lock=False)

    @validate("rules")
    def _check_rules(self, proposal: Any) -> dict[str, str]:
        try:
            return check_overrides(proposal["value"])
        except ValueError as exc:
            raise TraitError(
                f"Policy.rules: {exc}. Rule ids are {min(RULES)}..{max(RULES)} "
                "(the table is in sandbox_kernel/policy/rules.py)"
            ) from None


# Presets are defaults layered under the user's configuration: anything set
# explicitly wins, and an admin lock (see SECURITY.md) wins over both.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "standard": {},
    "classroom": {
        "Isolation": {"required_isolation": "landlock", "allowed_hosts": []},
        "Limits": {
            "wall_time_limit_s": 60.0,
            "memory_limit_mb": 2048,
            "max_processes": 128,
            "kill_cell_processes": True,
            "workspace_quota_mb": 1024,
            "cpu_share": 1.0,
        },
        "Output": {
            "max_cell_output_bytes": 8 * 1024 * 1024,
            "max_messages_per_s": 200.0,
            "active_content": "sanitize",
            "drop_frontend_payloads": True,
        },
        "Policy": {"preset": "classroom"},
    },
    "permissive": {
        "Isolation": {"required_isolation": "none", "seccomp": "auto"},
        "Policy": {"preset": "permissive"},
    },
}
