"""The audit log: one JSON line per cell and per policy violation, scrubbed of secrets.

Records go to an append-only file (created 0600, flushed after every record) and to a
``logging.Logger``. They never hold the cell's source (only its SHA-256), and every
value passes through ``scrub`` first, which masks the session's HMAC key, tokens taken
from secret-looking environment variables, and anything shaped like a credential.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from .kernel.env import is_secret_name
from .policy.verdict import Verdict

__all__ = ["REDACTED", "AuditLog", "Scrubber", "cell_sha256"]

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words
MAX_DETAIL = 2000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

# NAME=value or NAME: value where NAME looks like a credential (env dumps, headers, URLs).
_ASSIGNED = re.compile(
    r"(?i)\b([\w.-]*(?:token|secret|passw(?:or)?d?|passphrase|api[_-]?key|access[_-]?key|"
    r"private[_-]?key|credential|auth[_-]?token|cookie|session[_-]?key)[\w.-]*)(\s*[=:]\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)"
)
_AUTH_HEADER = re.compile(r"(?i)\b(authorization\s*[:=]\s*(?:token|bearer|basic)\s+)[^\s\"',;]+")
_SHAPES = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub tokens
    r"|github_pat_\w{20,}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    r"|sk-[A-Za-z0-9_-]{20,}"  # API keys of the sk- family
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\b[0-9a-fA-F]{32,}\b",  # hex keys and Jupyter/JupyterHub tokens
    re.DOTALL,
)
# JupyterHub's name for the user: it looks like hub wiring, but masking it would mask
# the user name in every record (the "user" field, paths under their home).
_NOT_SECRETS = frozenset({"JUPYTERHUB_USER"})
# Fields that are ours and hex by design.
_TRUSTED_FIELDS = frozenset({"cell_sha256", "time", "kind", "verdict", "rules"})


def cell_sha256(source: str) -> str:
    """The SHA-256 of a cell's source (surrogates escaped), as hex."""
    return hashlib.sha256(source.encode("utf-8", "surrogateescape")).hexdigest()


class Scrubber:
    """Masks secrets in strings and nested JSON-like values."""

    def __init__(
        self, secrets: Iterable[str | bytes] = (), *, environ: Mapping[str, str] | None = None
    ) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)
        for name, value in (os.environ if environ is None else environ).items():
            if is_secret_name(name) and name.upper() not in _NOT_SECRETS:
                self.add(value)

    def add(self, secret: str | bytes) -> None:
        """Mask ``secret`` (and its hex form, for bytes keys) wherever it appears."""
        if isinstance(secret, bytes):
            self.add(secret.hex())
            secret = secret.decode("utf-8", "replace")
        if len(secret) >= MIN_SECRET_LEN:
            self._secrets.add(secret)

    def text(self, value: str) -> str:
        # longest first, so a secret that contains another is masked whole
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, REDACTED)
        value = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, value)
        value = _ASSIGNED.sub(lambda m: m.group(1) + m.group(2) + REDACTED, value)
        return _SHAPES.sub(REDACTED, value)

    def value(self, value: Any, key: str = "", depth: int = 0) -> Any:
        """A scrubbed copy of ``value``; values under secret-looking keys are masked whole."""
        if key and is_secret_name(key):
            return REDACTED
        if depth > 20:
            return REDACTED
        if isinstance(value, str):
            return value if key in _TRUSTED_FIELDS else self.text(value)
        if isinstance(value, bytes):
            return self.text(value.decode("utf-8", "replace"))
        if isinstance(value, Mapping):
            return {str(k): self.value(v, str(k), depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v, key, depth + 1) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.text(str(value))


def _now() -> str:
    moment = datetime.datetime.now(datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Writes audit records for one kernel.

    ``path`` is the JSON-lines file (None: logger only). ``secrets`` are masked in every
    record (pass the session's HMAC key); values of secret-looking environment variables
    are masked too. Thread-safe.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        logger: logging.Logger | None = None,
        kernel_id: str = "",
        user: str = "",
        isolation: str = "",
        secrets: Iterable[str | bytes] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        # The file's size bound: past it the file becomes PATH.1 (replacing an older
        # one) and a new file starts, so the log holds at most about twice this.
        self.max_bytes = max_bytes
        self.logger = logger if logger is not None else logging.getLogger(__name__)
        self.kernel_id = kernel_id
        self.user = user
        self.isolation = isolation
        self.scrubber = Scrubber(secrets)
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self.path = str(path) if path is not None else None
        # Why the file could not be used; records then go to the logger only.
        self.error: str | None = None
        if path is not None:
            try:
                self._file = self._open(Path(path))
            except OSError as exc:
                # A kernel that cannot write its audit file still serves (and says so
                # in %sandbox and the kernel log) rather than dying before its first cell.
                self.error = f"{exc.strerror or exc} ({path})"
                self.logger.error(
                    "audit log unavailable, logging to the kernel log only: %s", self.error
                )

    @staticmethod
    def _open(path: Path) -> IO[str]:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(path, flags, 0o600)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o077 and st.st_uid == os.geteuid():
                os.fchmod(fd, 0o600)  # an older file created with a looser umask
            return os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        except BaseException:
            os.close(fd)
            raise

    def add_secret(self, secret: str | bytes) -> None:
        """Mask one more value in every later record."""
        self.scrubber.add(secret)

    # -- records -----------------------------------------------------------------------

    def record_cell(
        self,
        source: str,
        verdict: Verdict | None,
        *,
        resources: Mapping[str, Any] | None = None,
        isolation: str | None = None,
    ) -> dict[str, Any]:
        """One record for a cell, then one per static finding; returns the cell record."""
        digest = cell_sha256(source)
        allowed = verdict is None or verdict.allowed
        record: dict[str, Any] = {
            "time": _now(),
            "kind": "cell",
            "kernel_id": self.kernel_id,
            "user": self.user,
            "cell_sha256": digest,
            "verdict": "allowed" if allowed else "denied",
            "rules": verdict.rule_ids if verdict is not None else [],
            "syntax_error": bool(verdict and verdict.syntax_error),
            "isolation": isolation if isolation is not None else self.isolation,
            "resources": dict(resources or {}),
        }
        self._write(record)
        for finding in verdict.findings if verdict is not None else []:
            self._write(
                {
                    "time": record["time"],
                    "kind": "violation",
                    "source": "static",
                    "kernel_id": self.kernel_id,
                    "user": self.user,
                    "cell_sha256": digest,
                    "verdict": "denied" if finding.action == "deny" else "allowed",
                    "rules": [finding.rule_id],
                    "action": finding.action,
                    "line": finding.line,
                    "col": finding.col,
                    "detail": finding.message[:MAX_DETAIL],
                    "isolation": record["isolation"],
                }
            )
        return record

    def record_violation(
        self, report: Mapping[str, Any], *, source: str | None = None, reported_by: str = "cell"
    ) -> dict[str, Any]:
        """One record for a runtime report: ``{"event", "rule", "action", "detail"}``.

        ``reported_by`` says whose word it is: "cell" (a frame from the executor,
        where the cell runs and could have written it), "supervisor" (the sandbox's
        pid 1, over its own channel: seccomp reports), or "kernel" (this process).
        """
        action = str(report.get("action", ""))
        record: dict[str, Any] = {
            "time": _now(),
            "kind": "violation",
            "source": "runtime",
            "kernel_id": self.kernel_id,
            "user": self.user,
            "cell_sha256": cell_sha256(source) if source is not None else "",
            "verdict": "denied" if action == "deny" else "allowed",
            "rules": [str(report.get("rule", ""))] if report.get("rule") else [],
            "action": action,
            "event": str(report.get("event", "")),
            "detail": str(report.get("detail", ""))[:MAX_DETAIL],
            "isolation": self.isolation,
            "reported_by": reported_by,
        }
        self._write(record)
        return record

    def record_network(self, connection: Mapping[str, Any]) -> dict[str, Any]:
        """One record per connection through the egress proxy (``reported_by: kernel``).

        Host, port, address, bytes and verdict only: never a path or a query string.
        """
        record: dict[str, Any] = {
            "time": _now(),
            "kind": "network",
            "kernel_id": self.kernel_id,
            "user": self.user,
            "verdict": str(connection.get("verdict", "")),
            "method": str(connection.get("method", ""))[:16],
            "host": str(connection.get("host", ""))[:253],
            "port": connection.get("port", 0),
            "address": str(connection.get("address", ""))[:64],
            "bytes_up": connection.get("bytes_up", 0),
            "bytes_down": connection.get("bytes_down", 0),
            "seconds": connection.get("seconds", 0),
            "detail": str(connection.get("reason", ""))[:MAX_DETAIL],
            "isolation": self.isolation,
            "reported_by": "kernel",
        }
        self._write(record)
        return record

    def _write(self, record: dict[str, Any]) -> None:
        clean = self.scrubber.value(record)
        line = json.dumps(clean, ensure_ascii=False, separators=(",", ":"), default=str)
        with self._lock:
            if self._file is not None:
                self._rotate_if_needed(len(line.encode("utf-8", "replace")) + 1)
            if self._file is not None:
                self._file.write(line + "\n")
                self._file.flush()
        # Policy events are the sandbox doing its job, not problems of the kernel: they go
        # to the kernel log at INFO (the audit log is their record); WARNING and ERROR are
        # kept for what an operator must look at (a lost audit file, a limit unavailable).
        if clean.get("kind") == "network":
            self.logger.info(
                "network_connection user=%s verdict=%s host=%s port=%s up=%s down=%s",
                clean.get("user") or "-",
                clean["verdict"],
                clean["host"],
                clean["port"],
                clean["bytes_up"],
                clean["bytes_down"],
            )
        elif clean.get("kind") == "cell":
            self.logger.info(
                "cell_checked user=%s kernel_id=%s cell_sha256=%s verdict=%s rules=%s",
                clean.get("user") or "-",
                clean["kernel_id"],
                clean["cell_sha256"],
                clean["verdict"],
                ",".join(clean["rules"]) or "-",
            )
        else:
            self.logger.info(
                "policy_violation user=%s source=%s rule=%s action=%s event=%s detail=%s",
                clean.get("user") or "-",
                clean.get("source"),
                ",".join(clean.get("rules", [])) or "-",
                clean.get("action"),
                clean.get("event", "-"),
                clean.get("detail"),
            )

    def _rotate_if_needed(self, size: int) -> None:
        """Keep the file under ``max_bytes``: rotate it, or follow another kernel's rotation."""
        assert self._file is not None
        assert self.path is not None
        try:
            ours = os.fstat(self._file.fileno())
            try:
                current = os.stat(self.path, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            moved = current is None or (current.st_ino, current.st_dev) != (
                ours.st_ino,
                ours.st_dev,
            )
            if not moved and ours.st_size + size <= self.max_bytes:
                return
            if not moved:
                os.replace(self.path, self.path + ".1")
            self._file.close()
            self._file = self._open(Path(self.path))
        except OSError as exc:
            self._file = None
            self.error = f"{exc.strerror or exc} ({self.path}, rotating)"
            self.logger.error(
                "audit log unavailable, logging to the kernel log only: %s", self.error
            )

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
