# attack: pidfd_open + pidfd_send_signal(SIGKILL) on a host process, by raw system call
# expect-rule: SKP201
# stage: static
# barrier: pid namespace / Landlock signal scope
# marker: REACHED proc304
# check: marker_alive
import ctypes

libc = ctypes.CDLL(None, use_errno=True)
SYS_pidfd_open, SYS_pidfd_send_signal = 434, 424
print('REACHED', 'proc304', flush=True)
fd = libc.syscall(SYS_pidfd_open, {marker_pid}, 0)
print('pidfd', fd, ctypes.get_errno())
if fd >= 0:
    print('signal', libc.syscall(SYS_pidfd_send_signal, fd, 9, None, 0), ctypes.get_errno())
