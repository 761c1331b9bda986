"""Each student's Jupyter server: the sandbox kernel is the only kernel, and nothing else
runs code outside the sandbox.

The hub puts this directory on the server's JUPYTER_CONFIG_PATH (jupyterhub_config.py
beside this file) and makes the server ignore the student's own ~/.jupyter.
"""

from __future__ import annotations

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (Jupyter provides it)

KERNEL_NAME = "sandbox-python"


class SandboxOnlyKernelSpecManager(KernelSpecManager):
    """Lists and starts the allowed kernels only.

    ``allowed_kernelspecs`` alone filters the list, but jupyter_client still starts
    ``python3`` (ipykernel, outside any sandbox) when a client asks for it by name, even
    with ``ensure_native_kernel = False``: here every other name is unknown.
    """

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name.lower() not in {name.lower() for name in self.allowed_kernelspecs}:
            raise NoSuchKernel(kernel_name)
        return super().get_kernel_spec(kernel_name)


c.ServerApp.kernel_spec_manager_class = SandboxOnlyKernelSpecManager
c.KernelSpecManager.allowed_kernelspecs = {KERNEL_NAME}
c.KernelSpecManager.ensure_native_kernel = False
c.MappingKernelManager.default_kernel_name = KERNEL_NAME
# Kernels idle for an hour are shut down (each holds up to its memory limit).
c.MappingKernelManager.cull_idle_timeout = 3600
c.MappingKernelManager.cull_interval = 300

# Nothing else may run code as the student outside the sandbox: no terminals, no
# language servers, and no access to hidden files (~/.jupyter, ~/.local, ~/.ipython)
# through the file browser or the contents API.
c.ServerApp.terminals_enabled = False
c.ContentsManager.allow_hidden = False
c.ServerApp.jpserver_extensions = {
    "jupyter_server_terminals": False,
    "jupyter_lsp": False,
    # nbgrader's "Validate" button and its formgrader (an instructor's tool) run
    # notebooks with kernels of their own choosing, outside this server's kernel list.
    "nbgrader.server_extensions.validate_assignment": False,
    "nbgrader.server_extensions.formgrader": False,
}
