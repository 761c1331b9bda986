# attack: create ~/.jupyter/jupyter_server_config.py of the user who started the kernel
# expect-rule: none
# stage: none (the policy lets cells write in HOME, private inside the sandbox, and in /tmp,
#   which holds this host HOME in the tests)
# barrier: mount namespace (private tmpfs HOME) / landlock
# marker: REACHED fs110
# check: canary_unchanged
import pathlib

target = pathlib.Path({jupyter_config})
print('REACHED', 'fs110', flush=True)
target.parent.mkdir(parents=True, exist_ok=True)
target.write_text('c.ServerApp.token = ""\n')
