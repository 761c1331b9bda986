"""The audit log: JSON lines per cell and per violation, 0600, flushed, and never
holding the HMAC key, tokens or the cell's source."""

from __future__ import annotations

import datetime
import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.log import REDACTED, AuditLog, Scrubber, cell_sha256
from sandbox_kernel.policy import PolicySettings, check_cell

SESSION_KEY = "6a1f3c9e-0b7d-4e2a-9f11-3d5c7b9a2e44"
HUB_TOKEN = "c0ffee0123456789abcdef0123456789"


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "audit.jsonl"


def test_cell_and_violation_records(log_path: Path) -> None:
    verdict = check_cell("import os\nos.system('ls')\n!ls", PolicySettings("classroom"))
    with AuditLog(log_path, kernel_id="k-1", user="alice", isolation="landlock") as log:
        log.record_cell(
            "import os\nos.system('ls')\n!ls", verdict, resources={"cpu_s": 0.25, "max_rss_mb": 81}
        )
        log.record_violation(
            {
                "type": "audit",
                "event": "os.system",
                "rule": "SKP202",
                "action": "deny",
                "detail": "b'ls'",
            },
            source="import os\nos.system('ls')",
        )
    cell, *static, runtime = read(log_path)
    assert cell["kind"] == "cell"
    assert cell["kernel_id"] == "k-1"
    assert cell["user"] == "alice"
    assert cell["cell_sha256"] == cell_sha256("import os\nos.system('ls')\n!ls")
    assert cell["verdict"] == "denied"
    assert cell["rules"] == ["SKP202", "SKP101"]
    assert cell["isolation"] == "landlock"
    assert cell["resources"] == {"cpu_s": 0.25, "max_rss_mb": 81}
    moment = datetime.datetime.fromisoformat(cell["time"].replace("Z", "+00:00"))
    assert moment.utcoffset() == datetime.timedelta(0)
    assert [(v["rules"], v["line"], v["col"], v["action"]) for v in static] == [
        (["SKP202"], 2, 1, "deny"),
        (["SKP101"], 3, 1, "deny"),
    ]
    assert all(v["kind"] == "violation" and v["source"] == "static" for v in static)
    assert runtime["source"] == "runtime"
    assert runtime["event"] == "os.system"
    assert runtime["rules"] == ["SKP202"]
    assert runtime["verdict"] == "denied"
    # the source itself is never written
    assert "os.system('ls')" not in log_path.read_text()


def test_allowed_cell(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        record = log.record_cell("x = 1", check_cell("x = 1", PolicySettings()))
    assert record["verdict"] == "allowed"
    assert record["rules"] == []
    assert read(log_path) == [record]


def test_file_is_private_appended_and_flushed(log_path: Path) -> None:
    log = AuditLog(log_path)
    log.record_cell("x = 1", None)
    # flushed after each record: readable before close
    assert len(read(log_path)) == 1
    assert stat.S_IMODE(os.stat(log_path).st_mode) == 0o600
    log.close()
    with AuditLog(log_path) as again:
        again.record_cell("y = 2", None)
    assert len(read(log_path)) == 2


def test_existing_loose_file_is_tightened(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_text("")
    os.chmod(log_path, 0o644)
    with AuditLog(log_path) as log:
        log.record_cell("x", None)
    assert stat.S_IMODE(os.stat(log_path).st_mode) == 0o600


def test_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    log = AuditLog(link)
    # Refused, said so, and the kernel goes on logging to its own log.
    assert log.error is not None
    assert str(link) in log.error
    log.record_violation({"source": "static", "rule": "SKP201", "action": "deny", "detail": "x"})
    log.close()
    assert target.read_text() == ""


def test_secrets_never_reach_the_log(
    log_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", HUB_TOKEN)
    monkeypatch.setenv("MY_SERVICE_PASSWORD", "hunter2-but-longer")
    caplog.set_level(logging.INFO, logger="sandbox_kernel.log")
    log = AuditLog(log_path, kernel_id="k", secrets=[SESSION_KEY.encode()])
    log.record_cell(
        f"key = '{SESSION_KEY}'",
        None,
        resources={
            "note": f"hmac={SESSION_KEY}",
            "token": "plain-value-under-a-secret-key",
            "env": f"JUPYTERHUB_API_TOKEN={HUB_TOKEN} PATH=/usr/bin",
        },
    )
    for detail in (
        f"connect to http://hub/api?token={HUB_TOKEN}",
        "curl -H 'Authorization: token abc123def456'",
        "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        "password: hunter2-but-longer",
        "ghp_0123456789abcdefghijABCDEFGHIJ012345 and AKIAIOSFODNN7EXAMPLE",
        f"key is {SESSION_KEY}",
        f"hex {SESSION_KEY.encode().hex()}",
    ):
        log.record_violation({"event": "x", "rule": "SKP202", "action": "deny", "detail": detail})
    log.close()
    text = log_path.read_text()
    logged = caplog.text
    for secret in (
        SESSION_KEY,
        HUB_TOKEN,
        "hunter2-but-longer",
        "abc123def456",
        "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
        "ghp_0123456789abcdefghij",
        "AKIAIOSFODNN7EXAMPLE",
        "plain-value-under-a-secret-key",
        SESSION_KEY.encode().hex(),
    ):
        assert secret not in text, secret
        assert secret not in logged, secret
    assert REDACTED in text
    assert "PATH=/usr/bin" in text  # ordinary values survive
    records = read(log_path)
    assert records[0]["resources"]["token"] == REDACTED
    # our own hashes are not mistaken for secrets
    assert records[0]["cell_sha256"] == cell_sha256(f"key = '{SESSION_KEY}'")


def test_scrubber_on_nested_values() -> None:
    scrubber = Scrubber(["s3cret-value"], environ={"GITHUB_TOKEN": "tok-123456789"})
    cleaned = scrubber.value(
        {"a": ["x s3cret-value y", {"api_key": "anything"}], "b": ("tok-123456789",), "n": 3}
    )
    assert cleaned == {"a": [f"x {REDACTED} y", {"api_key": REDACTED}], "b": [REDACTED], "n": 3}


def test_logger_lines_are_structured(log_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sandbox_kernel.log")
    source = "secret_plan = 42\nimport ctypes"
    verdict = check_cell(source, PolicySettings())
    with AuditLog(log_path, kernel_id="k-9") as log:
        log.record_cell(source, verdict)
    messages = [r.getMessage() for r in caplog.records]
    assert any(
        m.startswith("cell_checked user=- kernel_id=k-9 ")
        and "verdict=denied" in m
        and "rules=SKP201" in m
        for m in messages
    )
    assert any(
        m.startswith("policy_violation user=- source=static rule=SKP201 action=deny")
        for m in messages
    )
    # findings are described, but the cell's source is not logged
    assert all("secret_plan" not in m for m in messages)
    assert "secret_plan" not in log_path.read_text()


def test_logger_only(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    logger = logging.getLogger("test.audit")
    log = AuditLog(None, logger=logger)
    log.record_cell("x = 1", None)
    assert [r.name for r in caplog.records] == ["test.audit"]


def test_concurrent_writers_do_not_interleave(log_path: Path) -> None:
    log = AuditLog(log_path)

    def write() -> None:
        for i in range(200):
            log.record_violation(
                {"event": "e", "rule": "SKP202", "action": "warn", "detail": "x" * (i % 50)}
            )

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    assert len(read(log_path)) == 800


def test_the_audit_log_is_rotated_at_its_size_bound(log_path: Path) -> None:
    with AuditLog(log_path, max_bytes=64 * 1024) as log:
        for i in range(200):
            log.record_violation({"event": "open", "rule": "SKP240", "detail": f"{i} " + "x" * 900})
    assert log_path.stat().st_size <= 64 * 1024
    rotated = Path(str(log_path) + ".1")
    assert rotated.stat().st_size <= 64 * 1024
    assert stat.S_IMODE(rotated.stat().st_mode) == 0o600
    # The newest record is in the file, the file before it in PATH.1, all whole lines.
    assert read(log_path)[-1]["detail"].startswith("199 ")
    assert read(rotated)


def test_a_kernel_follows_another_kernels_rotation(log_path: Path) -> None:
    with AuditLog(log_path, max_bytes=64 * 1024) as first, AuditLog(log_path) as second:
        for _ in range(40):  # ~2.3 kB each: the file is rotated once
            first.record_violation({"event": "a", "detail": "x" * 2000})
        second.record_violation({"event": "c", "detail": "after"})
    events = [r["event"] for r in read(log_path)]
    assert events[-1] == "c"
    assert len(events) < 40
    assert Path(str(log_path) + ".1").exists()


def test_runtime_records_say_who_reported_them(log_path: Path) -> None:
    with AuditLog(log_path) as log:
        log.record_violation({"event": "open", "rule": "SKP240"})
        log.record_violation({"event": "seccomp", "rule": "SECCOMP"}, reported_by="supervisor")
    assert [r["reported_by"] for r in read(log_path)] == ["cell", "supervisor"]


def test_log_text_from_the_cell_cannot_start_a_line() -> None:
    from sandbox_kernel.relay.reports import escape_for_log

    text = escape_for_log("x\n[W 2024 ServerApp] forged\r\x1b[2K\u2028\u202e")
    assert "\n" not in text
    assert "\r" not in text
    assert "\x1b" not in text
    assert "\u2028" not in text
    assert "\u202e" not in text
    assert text.startswith("x\\n[W 2024 ServerApp] forged\\r\\x1b[2K")
