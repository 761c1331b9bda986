# attack: SIGKILL the trusted kernel process (the executor's ancestor)
# expect-rule: SKP203
# stage: static
# barrier: pid namespace / Landlock signal scope
# marker: REACHED proc302
# check: kernel_alive
import os
import signal

print('REACHED', 'proc302', flush=True)
os.kill({kernel_pid}, signal.SIGKILL)
