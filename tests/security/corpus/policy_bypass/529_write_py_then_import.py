# attack: write a .py file whose code the static check never sees, then import it
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb529
# check: host_untouched
import pathlib

payload = {shell_payload}
module = 'helper_' + {token}
pathlib.Path(module + '.py').write_text('import os\nos.system(' + repr(payload) + ')\n')
print('REACHED', 'pb529', flush=True)
__import__(module)
