"""Imports from directories cells can write: from source, checked, never from bytecode.

A cell can write a module into its workspace (or /tmp, HOME) and import it. Its
source is compiled, and the runtime policy checks every compilation of a user
file. Bytecode would skip that check: a ``.pyc`` in ``__pycache__`` whose header
matches a harmless source file, a bare ``.pyc`` beside it, or one inside a zip on
``sys.path``. So in those directories modules are always compiled from their source
(``SourceOnlyLoader``), and the audit hook refuses bytecode read from them wherever
it comes from (``audit._Hook._marshal``). Extension modules (``.so``) there are
native code, which no Python-level check sees: their loading is put to the policy
as SKP201 (native code), like ctypes.

Directories outside the user's reach (the standard library, site-packages) keep
the stock loaders and their bytecode caches.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib.machinery import (
    BYTECODE_SUFFIXES,
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    ExtensionFileLoader,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
    SourcelessFileLoader,
)
from types import CodeType, ModuleType
from typing import Any

__all__ = ["install"]

# Set by install(): (path) -> whether cells can write there; (rule, subject, path) ->
# the policy's decision (raises SandboxPolicyError when the action is deny).
_user_path: Callable[[str], bool] = lambda path: False  # noqa: E731
_decide: Callable[[str, str, str], None] = lambda rule, subject, path: None  # noqa: E731


class SourceOnlyLoader(SourceFileLoader):
    """Compiles the source every time, so the policy checks what runs."""

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        code: CodeType = self.source_to_code(self.get_data(path), path)
        return code

    def set_data(self, path: str, data: Any, *, _mode: int = 0o666) -> None:
        """No bytecode cache is written: it would never be read."""


class RefusedBytecodeLoader(SourcelessFileLoader):
    """A bare ``.pyc`` in a directory cells write: bytecode nobody checked."""

    def get_code(self, fullname: str) -> CodeType | None:
        path = self.get_filename(fullname)
        _decide("SKP233", f"importing the bytecode file {path}", path)
        return super().get_code(fullname)


class GuardedExtensionLoader(ExtensionFileLoader):
    """An extension module in a directory cells write: native code (SKP201)."""

    def create_module(self, spec: ModuleSpec) -> ModuleType:
        _decide("SKP201", f"importing the extension module {self.path}", self.path)
        return super().create_module(spec)


def _guarded_finder() -> Callable[[str], Any]:
    return FileFinder.path_hook(
        (GuardedExtensionLoader, EXTENSION_SUFFIXES),
        (SourceOnlyLoader, SOURCE_SUFFIXES),
        (RefusedBytecodeLoader, BYTECODE_SUFFIXES),
    )


def install(user_path: Callable[[str], bool], decide: Callable[[str, str, str], None]) -> None:
    """Put the guarded finder in front of the stock one for directories cells write."""
    global _user_path, _decide
    _user_path, _decide = user_path, decide
    guarded = _guarded_finder()
    hooks = sys.path_hooks
    for index, hook in enumerate(hooks):
        if getattr(hook, "__qualname__", "").startswith("FileFinder.path_hook"):
            stock = hook

            def path_hook(path: str, stock: Callable[[str], Any] = stock) -> Any:
                where = os.path.realpath(path or os.getcwd())
                return guarded(path) if _user_path(where) else stock(path)

            hooks[index] = path_hook
            break
    # Finders made before this point used the stock loaders.
    sys.path_importer_cache.clear()
