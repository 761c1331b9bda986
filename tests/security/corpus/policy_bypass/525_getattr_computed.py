# attack: getattr(os, name) with a name read from a file at run time
# expect-rule: SKP306
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb525
# check: host_untouched
import os
import pathlib

payload = {shell_payload}
pathlib.Path('attribute-name.txt').write_text('system')
name = pathlib.Path('attribute-name.txt').read_text()
print('REACHED', 'pb525', flush=True)
getattr(os, name)(payload)
