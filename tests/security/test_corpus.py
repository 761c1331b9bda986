"""The attack corpus (tests/security/corpus/), each attack run twice through a real kernel.

* **policy on** (classroom preset, runtime hooks on): the policy must refuse the attack with
  the rule id its header names, statically (the cell never runs: its marker is absent) or at
  run time (SandboxPolicyError raised inside the cell).
* **policy off** (permissive preset, runtime hooks off): the attack must run up to the
  barrier (its marker is printed, codejail's "reached the barrier"), and the OS sandbox
  must still contain it.

In both runs the host is checked from outside the kernel (``CHECKS``): canaries unread and
unchanged, listeners never contacted, the marker process alive, the HMAC key in no message,
no forged IOPub message, the kernel still serving. Each check is shown able to fail by
``test_outside_checks_can_fail``. The header format and the placeholders are documented
in tests/security/corpus/README.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import re
import shlex
import site
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.security.conftest import (
    LEVEL_KERNELS,
    SECRET_ENV,
    Host,
    Sandbox,
    start_sandbox,
    world_writable_canary,
)
from tests.utils import execute_until_idle, kernel_pid, strip_ansi

CORPUS = Path(__file__).parent / "corpus"
CATEGORIES = ("fs_escape", "net", "proc", "kernel_channel", "policy_bypass")
MODES = {
    # Only Policy.preset selects the policy: SandboxKernelApp.preset=classroom sets limits and
    # output filtering and leaves the policy at 'standard' (shell escapes run).
    "on": ["--Policy.preset=classroom"],
    "off": ["--Policy.preset=permissive", "--Policy.runtime_hooks=False"],
}
CELL_TIMEOUT = 30.0
HEADER = re.compile(r"^# ([a-z-]+(?:@[a-z]+)?): ?(.*)$")
# Errors that mean the attack itself is broken, not that a barrier stopped it.
ATTACK_BUGS = frozenset(
    {
        "NameError",
        "SyntaxError",
        "IndentationError",
        "TypeError",
        "AttributeError",
        "ImportError",
        "ModuleNotFoundError",
        "KeyError",
        "IndexError",
        "UnboundLocalError",
        "UsageError",
    }
)
IOPUB_TYPES = frozenset(
    {
        "status",
        "execute_input",
        "stream",
        "display_data",
        "update_display_data",
        "execute_result",
        "error",
        "clear_output",
        "comm_open",
        "comm_msg",
        "comm_close",
    }
)


# -- the corpus ------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    """One corpus file: its header (``# key: value`` lines) and the cell that follows."""

    ident: str
    path: Path
    headers: dict[str, str]
    body: str

    @classmethod
    def load(cls, path: Path) -> Attack:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        count = 0
        while count < len(lines) and lines[count].startswith("#"):
            count += 1
        headers: dict[str, str] = {}
        last = None
        for line in lines[:count]:
            match = HEADER.match(line.rstrip("\n"))
            if match:
                last = match.group(1)
                headers[last] = match.group(2).strip()
            elif last is not None and line.startswith("#   "):
                headers[last] += " " + line[1:].strip()
        # The header is not sent: a %%cell_magic may be the cell's first line.
        return cls(f"{path.parent.name}/{path.stem}", path, headers, "".join(lines[count:]))

    def get(self, key: str, level: str) -> str:
        """A header's value, a ``key@level`` line overriding ``key`` at that level."""
        value = self.headers.get(f"{key}@{level}", self.headers.get(key, ""))
        return value.split(" (", 1)[0].strip()

    @property
    def checks(self) -> list[str]:
        return [c.strip() for c in self.headers["check"].split(",") if c.strip()]

    @property
    def marker(self) -> str:
        return self.headers["marker"]


def discover() -> list[Attack]:
    return [Attack.load(p) for c in CATEGORIES for p in sorted((CORPUS / c).glob("[0-9]*.py"))]


ATTACKS = discover()


def _params(mode: str) -> list[Any]:
    params = []
    for attack in ATTACKS:
        reason = attack.headers.get(f"xfail-{mode}") or attack.headers.get("xfail")
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(attack, id=attack.ident, marks=marks))
    return params


# -- running a cell and looking at everything the kernel sent ---------------------------


@dataclass
class Outcome:
    msg_id: str
    code: str
    reply: dict[str, Any]
    iopub: list[dict[str, Any]]
    reply_at: float  # time.time() when the reply arrived

    @property
    def content(self) -> dict[str, Any]:
        return self.reply["content"]

    def own(self) -> list[dict[str, Any]]:
        return [m for m in self.iopub if m["parent_header"].get("msg_id") == self.msg_id]

    def stream(self, name: str | None = None) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.own()
            if m["msg_type"] == "stream" and name in (None, m["content"]["name"])
        )

    @property
    def stdout(self) -> str:
        return self.stream("stdout")

    def all_text(self) -> str:
        """Every message of the run, serialised: what a frontend could show or store."""
        return json.dumps([m["content"] for m in self.iopub] + [self.content], default=str)

    def error_text(self) -> str:
        parts = [self.content.get("evalue", ""), *self.content.get("traceback", [])]
        for m in self.own():
            if m["msg_type"] == "error":
                parts += [m["content"]["evalue"], *m["content"]["traceback"]]
        return strip_ansi("\n".join(parts))


@dataclass
class Box:
    """One kernel of the module: a level, a policy mode, and what the test sent to it."""

    sandbox: Sandbox
    mode: str
    key: str
    connection: dict[str, Any]
    sent: set[str] = field(default_factory=set)

    @property
    def kernel_pid(self) -> int:
        return kernel_pid(self.sandbox.km)

    def run(self, code: str, timeout: float = CELL_TIMEOUT) -> Outcome:
        kc = self.sandbox.kc
        msg_id = kc.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        self.sent.add(msg_id)
        run = execute_until_idle(kc, msg_id=msg_id, timeout=timeout)
        assert run.reply is not None
        return Outcome(run.msg_id, code, run.reply, run.iopub, time.time())

    def serving(self) -> Outcome:
        return self.run("print('serving', 6 * 7)", timeout=CELL_TIMEOUT)

    def close(self) -> None:
        self.sandbox.kc.stop_channels()
        self.sandbox.km.shutdown_kernel(now=True)


HOOK_PROBE = (
    "import pathlib\n"
    "source = 'import sys\\nsys.addaudithook(lambda *a: None)\\n'\n"
    "pathlib.Path('hookprobe_{tag}.py').write_text(source)\n"
    "import hookprobe_{tag}\n"
    "print('probe', 'ran')\n"
)


def _verify_mode(box: Box) -> None:
    """Prove the kernel runs the policy mode it was started with, by behaviour."""
    tag = uuid.uuid4().hex[:8]
    shell = box.run("!true")
    # Hidden from the static check (the code is a string written to a file): only the
    # runtime hook can see the sys.addaudithook in it (SKP209: deny in classroom, warn in
    # permissive, so a permissive kernel with hooks on would print a warning).
    hook = box.run(HOOK_PROBE.format(tag=tag))
    if box.mode == "on":
        assert shell.content.get("ename") == "SandboxPolicyError", shell.content
        assert "[SKP101]" in shell.error_text()
        assert hook.content.get("ename") == "SandboxPolicyError", hook.content
        assert "[SKP209]" in hook.error_text()
    else:
        assert shell.content["status"] == "ok", shell.content
        assert hook.content["status"] == "ok", hook.error_text()
        assert "probe ran" in hook.stdout
        assert "SKP" not in hook.all_text(), "the runtime hook is on in the policy-off kernel"


class Boxes:
    """The module's kernels for one level, one per policy mode, started on first use."""

    def __init__(self, level: str, host: Host, factory: pytest.TempPathFactory) -> None:
        self.level = level
        self.host = host
        self.factory = factory
        self.boxes: dict[str, Box] = {}
        self.skipped: str | None = None

    def get(self, mode: str) -> Box:
        if self.skipped:
            pytest.skip(self.skipped)
        if mode not in self.boxes:
            workspace = self.factory.mktemp(f"corpus-{self.level}-{mode}")
            workspace.chmod(0o777)
            try:
                sandbox = start_sandbox(self.level, workspace, self.host, extra=MODES[mode])
            except pytest.skip.Exception as exc:
                self.skipped = str(exc)
                raise
            info = json.loads(Path(sandbox.km.connection_file).read_text())
            box = Box(sandbox, mode, info["key"], info)
            try:
                _verify_mode(box)
            except BaseException:
                box.close()
                raise
            self.boxes[mode] = box
        return self.boxes[mode]

    def discard(self, mode: str) -> None:
        """The kernel stopped serving: the next test gets a new one."""
        box = self.boxes.pop(mode, None)
        if box is not None:
            with contextlib.suppress(Exception):
                box.close()

    def close(self) -> None:
        for mode in list(self.boxes):
            self.boxes.pop(mode).close()


@pytest.fixture(scope="module", params=sorted(LEVEL_KERNELS))
def boxes(
    request: pytest.FixtureRequest, host: Host, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Boxes]:
    kept = Boxes(request.param, host, tmp_path_factory)
    try:
        yield kept
    finally:
        kept.close()


# -- canaries of this module (the session's host fixture has the others) ----------------


@dataclass(frozen=True)
class Canaries:
    prefix: Path  # a world-writable file in <sys.prefix>/etc/jupyter (outside site-packages)
    site_packages: Path
    stdlib: Path

    def digests(self, host: Host) -> dict[Path, str]:
        paths = (host.canary_write, host.venv_canary, self.prefix)
        return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def canaries() -> Iterator[Canaries]:
    etc = Path(sys.prefix) / "etc" / "jupyter"
    with contextlib.suppress(PermissionError):
        etc.mkdir(parents=True, exist_ok=True)
    prefix, own = world_writable_canary(etc, "SANDBOX_TEST_PREFIX_CANARY")
    found = Canaries(prefix, Path(site.getsitepackages()[0]), Path(sysconfig.get_paths()["stdlib"]))
    try:
        yield found
    finally:
        if own:
            prefix.unlink(missing_ok=True)


# -- one run of one attack -------------------------------------------------------------


@dataclass
class Run:
    attack: Attack
    box: Box
    host: Host
    level: str
    values: dict[str, Any]
    before: dict[Path, str]
    plants: list[Path]
    outcome: Outcome | None = None
    zmq_contacts: list[str] = field(default_factory=list)

    @property
    def out(self) -> Outcome:
        assert self.outcome is not None
        return self.outcome


def placeholders(box: Box, host: Host, found: Canaries, token: str) -> dict[str, Any]:
    """Values of the {name} placeholders of the corpus (see corpus/README.md)."""
    assert host.marker is not None
    shell = "; ".join(
        [
            f"cat {shlex.quote(str(host.canary_read))}",
            f"echo pwned > {shlex.quote(str(host.canary_write))}",
            f"echo pwned >> {shlex.quote(str(host.venv_canary))}",
            f"kill -9 {host.marker.pid}",
        ]
    )
    return {
        "canary_read": str(host.canary_read),
        "canary_write": str(host.canary_write),
        "venv_canary": str(host.venv_canary),
        "prefix_canary": str(found.prefix),
        "pth_plant": str(found.site_packages / f"zz_sandbox_plant_{token}.pth"),
        "stdlib_plant": str(found.stdlib / f"zz_sandbox_plant_{token}.py"),
        "ssh_key": str(host.fake_home / ".ssh" / "id_rsa"),
        "jupyter_config": str(host.fake_home / ".jupyter" / "jupyter_server_config.py"),
        "connection_file": str(box.sandbox.km.connection_file),
        "connection_dir": str(Path(box.sandbox.km.connection_file).parent),
        "tcp_port": host.tcp_port,
        "udp_port": host.udp_port,
        "abstract_name": host.abstract_name,
        "unix_path": host.unix_path,
        "marker_pid": host.marker.pid,
        "kernel_pid": box.kernel_pid,
        "shell_port": box.connection["shell_port"],
        "token": token,
        "cell_end_file": str(box.sandbox.workspace / f"cell-end-{token}.txt"),
        "shell_payload": shell,
    }


def render(body: str, values: dict[str, Any]) -> str:
    """Replace the known {name} placeholders only (str -> Python literal, int -> digits)."""
    names = "|".join(map(re.escape, values))

    def value(match: re.Match[str]) -> str:
        item = values[match.group(1)]
        return repr(item) if isinstance(item, str) else str(item)

    return re.sub(r"\{(" + names + r")\}", value, body)


class ZmqWatch:
    """Records TCP connections to the kernel's ports that did not exist before the cell."""

    def __init__(self, ports: set[int]) -> None:
        self.ports = ports
        self.baseline = self._connections()
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _connections(self) -> set[tuple[Any, ...]]:
        return {
            (c.laddr, c.raddr)
            for c in psutil.net_connections(kind="tcp")
            if c.laddr and c.raddr and c.laddr.port in self.ports
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            new = self._connections() - self.baseline
            self.seen.extend(f"{local} <- {remote}" for local, remote in new)
            self.baseline |= new
            time.sleep(0.02)

    def __enter__(self) -> ZmqWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)
        self._stop.set()
        self._thread.join(timeout=5)


def kernel_ports(box: Box) -> set[int]:
    return {int(box.connection[k]) for k in box.connection if k.endswith("_port")}


def run_attack(boxes: Boxes, mode: str, host: Host, found: Canaries, attack: Attack) -> Run:
    box = boxes.get(mode)
    token = uuid.uuid4().hex
    values = placeholders(box, host, found, token)
    plants = [Path(values[k]) for k in ("pth_plant", "stdlib_plant", "jupyter_config")]
    stale = {name: list(lis.hits) for name, lis in host.listeners.items() if lis.hits}
    for listener in host.listeners.values():
        listener.hits.clear()
    assert not stale, f"a listener was contacted after the previous attack was checked: {stale}"
    run = Run(attack, box, host, boxes.level, values, found.digests(host), plants)
    code = render(attack.body, values)
    try:
        if "no_zmq_contact" in attack.checks:
            with ZmqWatch(kernel_ports(box)) as watch:
                run.outcome = box.run(code)
            run.zmq_contacts = watch.seen
        else:
            run.outcome = box.run(code)
    except Exception:
        boxes.discard(mode)  # a kernel that does not answer is replaced for the next test
        raise
    return run


# -- outside checks: what the host saw ---------------------------------------------------


def check_canary_unread(run: Run) -> None:
    assert run.host.secret_text not in run.out.all_text(), "host file content reached the output"


def check_canary_unchanged(run: Run) -> None:
    for path, digest in run.before.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path} was modified"
    for path in run.plants:
        assert not path.exists(), f"{path} was created on the host"


def check_no_listener_contact(run: Run, settle: float = 0.5) -> None:
    time.sleep(settle)
    for name, listener in run.host.listeners.items():
        assert listener.hits == [], f"the host's {name} listener was contacted: {listener.hits}"


def check_marker_alive(run: Run) -> None:
    marker = run.host.marker
    assert marker is not None
    assert marker.poll() is None, "the host marker process was killed"
    status = Path(f"/proc/{marker.pid}/status").read_text()
    assert re.search(r"^TracerPid:\s+0$", status, re.M), "the host marker process is traced"
    assert not re.search(r"^State:\s+[tT]", status, re.M), "the host marker process is stopped"


def check_kernel_alive(run: Run) -> None:
    try:
        process = psutil.Process(run.box.kernel_pid)
        assert process.status() != psutil.STATUS_ZOMBIE, "the kernel process died"
    except psutil.NoSuchProcess:
        raise AssertionError("the kernel process is gone") from None


def check_hmac_key_absent(run: Run) -> None:
    assert run.box.key, "no key in the connection file: the check would be vacuous"
    assert run.box.key not in run.out.all_text(), "the HMAC key reached the output"


def check_secrets_absent(run: Run) -> None:
    text = run.out.all_text()
    for name, value in SECRET_ENV.items():
        assert value not in text, f"the kernel's {name} reached the output"


def check_no_zmq_contact(run: Run) -> None:
    assert run.zmq_contacts == [], f"something connected to the kernel's ports: {run.zmq_contacts}"


def check_iopub_clean(run: Run) -> None:
    """Every IOPub message is the kernel's own: known type, a parent this client sent, no
    forged header; exactly one busy/idle pair and one execute_input for the cell."""
    token = run.values["token"]
    out = run.out
    for msg in out.iopub:
        where = f"{msg['msg_type']} {json.dumps(msg['content'])[:200]}"
        assert msg["msg_type"] in IOPUB_TYPES, f"unexpected IOPub message type: {where}"
        assert msg["parent_header"].get("msg_id") in run.box.sent, f"foreign parent: {where}"
        for part in ("header", "parent_header"):
            assert token not in json.dumps(msg[part], default=str), f"forged {part}: {where}"
    states = [m["content"]["execution_state"] for m in out.own() if m["msg_type"] == "status"]
    assert states == ["busy", "idle"], f"status messages for the cell: {states}"
    inputs = [m["content"]["code"] for m in out.own() if m["msg_type"] == "execute_input"]
    assert inputs == [out.code], f"execute_input messages for the cell: {inputs}"
    reply = json.dumps([out.reply["header"], out.reply["parent_header"]], default=str)
    assert token not in reply, f"forged execute_reply header: {reply}"


def check_reply_after_cell_end(run: Run) -> None:
    """The kernel replied only once the cell had really ended (it writes a file last)."""
    marker = Path(run.values["cell_end_file"])
    reply = {k: run.out.content.get(k) for k in ("status", "ename", "evalue")}
    if not marker.exists():
        # The kernel may have ended the cell itself (a limit, a torn frame that cost
        # the executor); then nothing of the cell may still be running after the reply.
        time.sleep(3)
        assert not marker.exists(), f"the kernel replied while the cell was still running: {reply}"
        return
    assert marker.stat().st_mtime <= run.out.reply_at + 0.05, (
        f"the reply came before the end: {reply}"
    )


def check_host_untouched(run: Run) -> None:
    check_canary_unread(run)
    check_canary_unchanged(run)
    check_marker_alive(run)


CHECKS: dict[str, Callable[[Run], None]] = {
    "canary_unread": check_canary_unread,
    "canary_unchanged": check_canary_unchanged,
    "no_listener_contact": check_no_listener_contact,
    "marker_alive": check_marker_alive,
    "kernel_alive": check_kernel_alive,
    "hmac_key_absent": check_hmac_key_absent,
    "secrets_absent": check_secrets_absent,
    "no_zmq_contact": check_no_zmq_contact,
    "iopub_clean": check_iopub_clean,
    "reply_after_cell_end": check_reply_after_cell_end,
    "host_untouched": check_host_untouched,
}
# Run after every attack whatever its header names (cheap, and always meaningful).
BASELINE = (
    "canary_unread",
    "canary_unchanged",
    "hmac_key_absent",
    "secrets_absent",
    "kernel_alive",
    "iopub_clean",
)


def outside_checks(run: Run, boxes: Boxes) -> None:
    """The attack's named checks, the baseline, and: the kernel still serves."""
    try:
        for name in dict.fromkeys([*run.attack.checks, *BASELINE]):
            CHECKS[name](run)
        # Hits that arrived after the named check (or without one) count too.
        for name, listener in run.host.listeners.items():
            assert listener.hits == [], f"the host's {name} listener was contacted"
        check_marker_alive(run)
    finally:
        for plant in run.plants:
            if plant.exists() and run.host.root not in plant.parents:
                plant.unlink()  # never leave planted code in the environment
    try:
        after = run.box.serving()
    except Exception as exc:
        boxes.discard(run.box.mode)
        raise AssertionError(f"the kernel stopped serving after the attack: {exc}") from exc
    if after.content["status"] != "ok" or "serving 42" not in after.stdout:
        boxes.discard(run.box.mode)
        raise AssertionError(f"the kernel stopped serving after the attack: {after.content}")


# -- the tests -------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    """Every category has attacks, and every header names what the tests need."""
    for category in CATEGORIES:
        assert any(a.ident.startswith(category + "/") for a in ATTACKS), category
    idents = [a.ident.split("/")[1].split("_")[0] for a in ATTACKS]
    assert len(idents) == len(set(idents)), "attack ids must be unique"
    for attack in ATTACKS:
        for key in ("attack", "expect-rule", "stage", "barrier", "marker", "check"):
            assert attack.headers.get(key), f"{attack.ident}: no '# {key}:' header"
        for level in LEVEL_KERNELS:
            rule, stage = attack.get("expect-rule", level), attack.get("stage", level)
            assert re.fullmatch(r"SKP\d{3}|none", rule), f"{attack.ident}: rule {rule!r}"
            assert stage == "none" if rule == "none" else stage in ("static", "runtime"), (
                f"{attack.ident}: stage {stage!r} for rule {rule!r}"
            )
        assert all(c in CHECKS for c in attack.checks), f"{attack.ident}: {attack.checks}"
        assert attack.marker not in attack.body, f"{attack.ident}: the marker is in the code"
        names = set(re.findall(r"\{([a-z_]+)\}", attack.body))
        unknown = names - set(PLACEHOLDER_NAMES) - FSTRING_NAMES
        assert not unknown, f"{attack.ident}: unknown placeholders {unknown}"


# Names in f-strings of the corpus, which look like placeholders to the check above.
FSTRING_NAMES = frozenset({"o", "s"})
PLACEHOLDER_NAMES = (
    "canary_read",
    "canary_write",
    "venv_canary",
    "prefix_canary",
    "pth_plant",
    "stdlib_plant",
    "ssh_key",
    "jupyter_config",
    "connection_file",
    "connection_dir",
    "tcp_port",
    "udp_port",
    "abstract_name",
    "unix_path",
    "marker_pid",
    "kernel_pid",
    "shell_port",
    "token",
    "cell_end_file",
    "shell_payload",
)


@pytest.mark.parametrize("attack", _params("on"))
def test_policy_on(attack: Attack, boxes: Boxes, host: Host, canaries: Canaries) -> None:
    """Classroom policy: the attack is refused with its rule id; the host is untouched."""
    rule, stage = attack.get("expect-rule", boxes.level), attack.get("stage", boxes.level)
    run = run_attack(boxes, "on", host, canaries, attack)
    out = run.out
    try:
        # A runtime attack the static check learns to refuse is refused earlier: accepted.
        static = "this cell was not run" in out.content.get("evalue", "")
        if stage == "static" or (stage == "runtime" and static):
            assert out.content.get("ename") == "SandboxPolicyError", out.content
            assert "this cell was not run" in out.content["evalue"]
            assert rule in out.content["evalue"], out.content["evalue"]
            assert f"[{rule}]" in out.error_text()
            assert attack.marker not in out.stream(), "the refused cell ran"
        elif stage == "runtime":
            # Raised inside the cell: the reply's error, or an error output (%run shows the
            # script's exception and replies ok).
            errors = [m["content"] for m in out.own() if m["msg_type"] == "error"]
            raised = [e for e in [out.content, *errors] if e.get("ename") == "SandboxPolicyError"]
            # A library may wrap the refusal in its own error (logging.config's ValueError,
            # urllib's URLError): the refusal is then the cause the traceback shows.
            wrapped = f"SandboxPolicyError: [{rule}]" in out.error_text()
            assert raised or wrapped, (
                f"not refused at run time: {out.content.get('ename')}: "
                f"{out.content.get('evalue', '')[:300]}"
            )
            assert wrapped or any(f"[{rule}]" in e["evalue"] for e in raised), raised[0]["evalue"]
            assert attack.marker in out.stdout, "the cell did not run up to the runtime hook"
        else:
            assert "SandboxPolicyError" not in out.all_text(), out.error_text()
            assert attack.marker in out.stdout, f"the attack did not run: {out.error_text()}"
    finally:
        outside_checks(run, boxes)


@pytest.mark.parametrize("attack", _params("off"))
def test_policy_off(attack: Attack, boxes: Boxes, host: Host, canaries: Canaries) -> None:
    """No policy at all: the attack reaches the barrier, and the OS sandbox contains it."""
    run = run_attack(boxes, "off", host, canaries, attack)
    out = run.out
    try:
        assert attack.marker in out.stdout, (
            f"the attack did not reach the barrier: {out.stdout!r} {out.error_text()[-800:]}"
        )
        assert "SandboxPolicyError" not in out.all_text(), "the policy is not off"
        assert out.content.get("ename") not in ATTACK_BUGS, (
            f"the attack is broken, not stopped: {out.error_text()[-800:]}"
        )
    finally:
        outside_checks(run, boxes)


# -- positive controls: every outside check can fail --------------------------------------


def _fake_outcome(code: str = "x", texts: tuple[str, ...] = (), parent: str = "m1") -> Outcome:
    def msg(kind: str, content: dict[str, Any], parent_id: str = parent) -> dict[str, Any]:
        return {
            "msg_type": kind,
            "content": content,
            "header": {"msg_id": uuid.uuid4().hex},
            "parent_header": {"msg_id": parent_id},
        }

    iopub = [msg("status", {"execution_state": "busy"}), msg("execute_input", {"code": code})]
    iopub += [msg("stream", {"name": "stdout", "text": t}) for t in texts]
    iopub.append(msg("status", {"execution_state": "idle"}))
    reply = msg("execute_reply", {"status": "ok"})
    return Outcome("m1", code, reply, iopub, time.time())


BREACHES: dict[str, Callable[[Run], None]] = {}


def breach(name: str) -> Callable[[Callable[[Run], None]], Callable[[Run], None]]:
    def register(fn: Callable[[Run], None]) -> Callable[[Run], None]:
        BREACHES[name] = fn
        return fn

    return register


@breach("canary_unread")
def _leak_canary(run: Run) -> None:
    run.outcome = _fake_outcome(texts=(run.host.secret_text,))


@breach("canary_unchanged")
def _change_canary(run: Run) -> None:
    run.before[run.host.canary_write] = "0" * 64  # as if it had been rewritten since


@breach("no_listener_contact")
def _contact_listener(run: Run) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", run.host.tcp_port)) as s:
        s.sendall(b"control")


@breach("marker_alive")
def _kill_marker(run: Run) -> None:
    import subprocess

    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    victim.kill()
    victim.wait()
    run.host = dataclasses.replace(run.host, marker=victim)


@breach("kernel_alive")
def _dead_kernel(run: Run) -> None:
    import subprocess

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    box = run.box
    run.box = dataclasses.replace(box, sandbox=dataclasses.replace(box.sandbox))
    run.box.sandbox.km = type("FakeKM", (), {"provisioner": type("P", (), {"process": gone})})()


@breach("hmac_key_absent")
def _leak_key(run: Run) -> None:
    run.outcome = _fake_outcome(texts=(f"key={run.box.key}",))


@breach("secrets_absent")
def _leak_env(run: Run) -> None:
    run.outcome = _fake_outcome(texts=(str(SECRET_ENV),))


@breach("no_zmq_contact")
def _contact_zmq(run: Run) -> None:
    import socket

    with (
        ZmqWatch(kernel_ports(run.box)) as watch,
        socket.create_connection(("127.0.0.1", run.box.connection["shell_port"])),
    ):
        time.sleep(0.3)
    run.zmq_contacts = watch.seen


@breach("iopub_clean")
def _forge_iopub(run: Run) -> None:
    run.box.sent.add("m1")
    run.outcome = _fake_outcome()
    run.outcome.iopub.insert(1, dict(run.outcome.iopub[0], parent_header={"msg_id": "forged"}))


@breach("reply_after_cell_end")
def _early_reply(run: Run) -> None:
    # As if the reply came while the cell still ran: it writes its last file a second later.
    marker = Path(run.values["cell_end_file"])
    marker.unlink()
    threading.Timer(1.0, marker.write_text, args=("end",)).start()


@breach("host_untouched")
def _leak_for_composite(run: Run) -> None:
    _leak_canary(run)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_outside_checks_can_fail(name: str, boxes: Boxes, host: Host, canaries: Canaries) -> None:
    """Positive control: each check fails on a simulated breach (else it proves nothing)."""
    box = boxes.get("off")
    attack = Attack("control/0", CORPUS, {"check": name}, "")
    token = uuid.uuid4().hex
    values = placeholders(box, host, canaries, token)
    run = Run(attack, box, host, boxes.level, values, canaries.digests(host), [])
    # A clean cell: it prints, and writes the file a cell that really ended writes last.
    run.outcome = box.run(f"open({values['cell_end_file']!r}, 'w').write('end')")
    CHECKS[name](run)  # clean: passes
    BREACHES[name](run)
    try:
        with pytest.raises(AssertionError):
            CHECKS[name](run)
    finally:
        for listener in host.listeners.values():
            listener.hits.clear()
