# attack: SIGKILL a process of the host (same user as the kernel)
# expect-rule: SKP203
# stage: static
# barrier: pid namespace / Landlock signal scope
# marker: REACHED proc301
# check: marker_alive
import os
import signal

print('REACHED', 'proc301', flush=True)
os.kill({marker_pid}, signal.SIGKILL)
