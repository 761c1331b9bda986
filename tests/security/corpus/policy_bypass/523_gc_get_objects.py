# attack: gc.get_objects() to find the os module
# expect-rule: SKP207
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb523
# check: host_untouched
import gc

payload = {shell_payload}
found = [o for o in gc.get_objects() if isinstance(o, dict) and o.get('__name__') == 'os']
print('REACHED', 'pb523', flush=True)
found[0]['system'](payload)
