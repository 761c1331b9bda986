# attack: overwrite a site-packages file through libc, below every Python-level check
# expect-rule: SKP201
# stage: static
# barrier: mount namespace (read-only bind) / landlock
# marker: REACHED fs107
# check: canary_unchanged
import ctypes
import os

libc = ctypes.CDLL(None, use_errno=True)
print('REACHED', 'fs107', flush=True)
fd = libc.open({venv_canary}.encode(), os.O_WRONLY | os.O_TRUNC)
print('open', fd, ctypes.get_errno())
if fd >= 0:
    print('write', libc.write(fd, b'pwned', 5))
