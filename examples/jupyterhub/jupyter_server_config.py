"""Each student's Jupyter server: the sandbox kernel is the only kernel, and nothing else
runs code outside the sandbox.

The hub puts this directory on the server's JUPYTER_CONFIG_PATH (jupyterhub_config.py
beside this file) and makes the server ignore the student's own ~/.jupyter.
"""

from __future__ import annotations

from sandbox_kernel.server_guard import configure

c = get_config()  # type: ignore[name-defined]  # noqa: F821 (Jupyter provides it)

KERNEL_NAME = "sandbox-python"

# Only the sandbox kernel may be listed or started (POST /api/kernels and /api/sessions
# with any other name fail), and no terminals or language servers (code outside the
# sandbox). Defence in depth: the kernel's output gate holds without it.
configure(c, [KERNEL_NAME])
# On a shared machine every user can reach every loopback port: kernels talk to the
# server over unix sockets in the student's 0700 runtime directory instead, each 0600
# (the kernel also refuses a connection file without an HMAC key).
c.KernelManager.transport = "ipc"
# Kernels idle for an hour are shut down (each holds up to its memory limit).
c.MappingKernelManager.cull_idle_timeout = 3600
c.MappingKernelManager.cull_interval = 300

# Nothing else may run code as the student outside the sandbox: no terminals, no
# language servers, and no access to hidden files (~/.jupyter, ~/.local, ~/.ipython)
# through the file browser or the contents API.
c.ContentsManager.allow_hidden = False
c.ServerApp.jpserver_extensions = {
    **c.ServerApp.jpserver_extensions,
    # nbgrader's "Validate" button and its formgrader (an instructor's tool) run
    # notebooks with kernels of their own choosing, outside this server's kernel list.
    "nbgrader.server_extensions.validate_assignment": False,
    "nbgrader.server_extensions.formgrader": False,
}
