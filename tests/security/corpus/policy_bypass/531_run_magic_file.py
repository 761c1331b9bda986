# attack: %run of a file written by the cell (the static check sees only %run)
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb531
# check: host_untouched
import pathlib

payload = {shell_payload}
pathlib.Path('job.py').write_text('import os\nos.system(' + repr(payload) + ')\n')
print('REACHED', 'pb531', flush=True)
%run job.py
