# attack: operator.methodcaller(name, cmd)(os) with a name read from a file
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb537
# check: host_untouched
import operator
import os
import pathlib

pathlib.Path('method-name.txt').write_text('system')
call = operator.methodcaller(pathlib.Path('method-name.txt').read_text(), {shell_payload})
print('REACHED', 'pb537', flush=True)
call(os)
