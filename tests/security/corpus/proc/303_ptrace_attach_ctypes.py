# attack: PTRACE_ATTACH to a host process through libc, then PTRACE_KILL it
# expect-rule: SKP201
# stage: static
# barrier: pid namespace / seccomp (no ptrace) and Landlock scope
# marker: REACHED proc303
# check: marker_alive
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
PTRACE_KILL, PTRACE_ATTACH = 8, 16
print('REACHED', 'proc303', flush=True)
result = libc.ptrace(PTRACE_ATTACH, {marker_pid}, None, None)
print('attach', result, ctypes.get_errno())
if result == 0:
    libc.ptrace(PTRACE_KILL, {marker_pid}, None, None)
