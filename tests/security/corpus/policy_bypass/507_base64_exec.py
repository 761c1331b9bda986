# attack: exec() of a base64 payload ('import os; os.system(payload)')
# expect-rule: SKP302
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb507
# check: host_untouched
import base64

payload = {shell_payload}
print('REACHED', 'pb507', flush=True)
exec(base64.b64decode('aW1wb3J0IG9zOyBvcy5zeXN0ZW0ocGF5bG9hZCk='))
