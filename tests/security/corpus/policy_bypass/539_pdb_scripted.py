# attack: a pdb fed its commands from a string runs '!' lines as Python the cell never shows
# expect-rule: SKP230
# stage: static (a debugger given stdin; at run time what it compiles is the cell's code)
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb539
# check: host_untouched
import io
import pdb

payload = {shell_payload}
commands = io.StringIO('!import os; os.system(' + repr(payload) + ')\nc\n')
print('REACHED', 'pb539', flush=True)
pdb.Pdb(stdin=commands, stdout=io.StringIO()).runcall(lambda: None)
