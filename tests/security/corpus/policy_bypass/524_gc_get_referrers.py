# attack: gc.get_referrers() from a builtin to the namespace that holds it
# expect-rule: SKP207
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb524
# check: host_untouched
import gc
import posixpath

payload = {shell_payload}
spaces = [r for r in gc.get_referrers(posixpath) if isinstance(r, dict) and 'system' in r]
print('REACHED', 'pb524', flush=True)
spaces[0]['system'](payload)
