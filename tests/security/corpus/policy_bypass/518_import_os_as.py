# attack: import os as o; o.system(...)
# expect-rule: SKP202
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb518
# check: host_untouched
import os as o

payload = {shell_payload}
print('REACHED', 'pb518', flush=True)
o.system(payload)
