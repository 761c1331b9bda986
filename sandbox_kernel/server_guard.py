"""Defence in depth on the Jupyter server: only sandboxed kernels, no terminals.

The output gate (relay/gate.py) keeps a cell's output from acting in the browser with
the user's authority; it does not need this module. An administrator who also wants
the server itself to refuse what such an output would be after (an unsandboxed
kernel, a terminal) turns this on in ``jupyter_server_config.py``::

    from sandbox_kernel.server_guard import configure
    configure(c)                      # only "sandbox-python" may start; no terminals

The JupyterHub and Kubernetes examples do. It runs in the Jupyter server, never in a
kernel.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

__all__ = ["SandboxOnlyKernelSpecManager", "configure"]

DEFAULT_KERNELS = ("sandbox-python",)


class SandboxOnlyKernelSpecManager(KernelSpecManager):
    """Lists and starts the allowed kernels only.

    ``allowed_kernelspecs`` alone filters the list, but jupyter_client still starts
    ``python3`` (ipykernel, outside any sandbox) when a client asks for it by name,
    even with ``ensure_native_kernel = False``: here every other name is unknown, so
    ``POST /api/kernels`` and ``/api/sessions`` with it fail.
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name.lower() not in {name.lower() for name in self.allowed_kernelspecs}:
            raise NoSuchKernel(kernel_name)
        return super().get_kernel_spec(kernel_name)


def configure(c: Any, kernels: Iterable[str] = DEFAULT_KERNELS) -> None:
    """Set a server's config ``c``: the given kernels only, no terminals, no LSP."""
    allowed = set(kernels)
    c.ServerApp.kernel_spec_manager_class = SandboxOnlyKernelSpecManager
    c.KernelSpecManager.allowed_kernelspecs = allowed
    c.KernelSpecManager.ensure_native_kernel = False
    c.MappingKernelManager.default_kernel_name = sorted(allowed)[0]
    # A terminal or a language server runs code as the user outside any sandbox.
    c.ServerApp.terminals_enabled = False
    extensions = dict(c.ServerApp.get("jpserver_extensions", {}) or {})
    extensions.update({"jupyter_server_terminals": False, "jupyter_lsp": False})
    c.ServerApp.jpserver_extensions = extensions
