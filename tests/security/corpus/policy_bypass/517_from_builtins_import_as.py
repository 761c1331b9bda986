# attack: from builtins import exec as run
# expect-rule: SKP305
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb517
# check: host_untouched
from builtins import exec as run

payload = {shell_payload}
print('REACHED', 'pb517', flush=True)
run('import os; os.system(payload)')
