# attack: importlib.import_module of a name read from a file
# expect-rule: SKP231
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb530
# check: host_untouched
import importlib
import pathlib

payload = {shell_payload}
pathlib.Path('module-name.txt').write_text('subprocess')
name = pathlib.Path('module-name.txt').read_text()
module = importlib.import_module(name)
print('REACHED', 'pb530', flush=True)
module.run(['sh', '-c', payload])
