"""What a student can write instead of what the policy refused, where an allowed way exists.

A refusal that only tells an administrator how to lift it leaves a student stuck. For
the refusals that have an ordinary, allowed equivalent (reading a class's ancestors,
the builtins module, listing a directory without a shell), the message names it.
Only equivalents that the same preset allows are listed here.
"""

from __future__ import annotations

import re

__all__ = ["alternative"]

# Rule id -> the allowed way, for rules where one way fits every finding.
_BY_RULE: dict[str, str] = {
    "SKP226": "inspect.getmro(cls) gives the same classes (import inspect first)",
    "SKP227": "import builtins, then builtins.max or dir(builtins): the same module",
    "SKP104": "ask whoever runs this server to add the package to the kernel's environment",
}

# Shell commands (SKP101) that plain Python does without a shell.
_SHELL: dict[str, str] = {
    "ls": "os.listdir('.') or sorted(pathlib.Path('.').iterdir()) lists a directory",
    "dir": "os.listdir('.') or sorted(pathlib.Path('.').iterdir()) lists a directory",
    "pwd": "os.getcwd() gives the working directory",
    "cat": "print(open(path).read()) or pathlib.Path(path).read_text() shows a file",
    "head": "open(path).readlines()[:10] gives the first lines of a file",
    "tail": "open(path).readlines()[-10:] gives the last lines of a file",
    "wc": "len(open(path).readlines()) counts a file's lines",
    "mkdir": "os.makedirs(path, exist_ok=True) makes a directory",
    "rm": "os.remove(path) deletes a file, shutil.rmtree(path) a directory",
    "cp": "shutil.copy(source, target) copies a file",
    "mv": "shutil.move(source, target) moves a file",
    "touch": "pathlib.Path(path).touch() creates a file",
    "echo": "print(...) writes text",
    "find": "sorted(pathlib.Path('.').rglob('*')) walks a directory",
    "unzip": "zipfile.ZipFile(path).extractall() unpacks an archive",
    "tar": "tarfile.open(path).extractall() unpacks an archive",
}
_SHELL_COMMAND = re.compile(r"^the (?:shell command '|magic %)!?\s*([\w.-]+)")
_EVAL = re.compile(r"^eval\(\) of a computed value")


def alternative(rule_id: str, subject: str) -> str:
    """The allowed way to do what ``subject`` (a finding's subject) tried, or ""."""
    if rule_id == "SKP101":
        match = _SHELL_COMMAND.match(subject)
        return _SHELL.get(match.group(1), "") if match else ""
    if rule_id == "SKP230" and _EVAL.match(subject):
        return "ast.literal_eval(text) reads a Python literal (numbers, strings, lists ...)"
    return _BY_RULE.get(rule_id, "")
