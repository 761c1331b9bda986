# attack: a stdlib function's __globals__ to reach os
# expect-rule: SKP221
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb520
# check: host_untouched
import shutil

payload = {shell_payload}
module = shutil.copyfile.__globals__['os']
print('REACHED', 'pb520', flush=True)
module.system(payload)
