# attack: sys._getframe().f_back... until a frame whose f_globals holds os
# expect-rule: SKP207
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb522
# check: host_untouched
import sys

payload = {shell_payload}
frame = sys._getframe(0)
module = None
while frame is not None and module is None:
    module = frame.f_globals.get('os')
    frame = frame.f_back
if module is None:
    module = sys.modules['os']
print('REACHED', 'pb522', flush=True)
module.system(payload)
