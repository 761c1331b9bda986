# attack: os.pidfd_open + signal.pidfd_send_signal(SIGKILL) on a host process, in plain Python
# expect-rule: SKP203
# stage: static
# barrier: pid namespace / Landlock signal scope
# marker: REACHED proc306
# check: marker_alive
import os
import signal

print('REACHED', 'proc306', flush=True)
pidfd = os.pidfd_open({marker_pid})
signal.pidfd_send_signal(pidfd, signal.SIGKILL)
