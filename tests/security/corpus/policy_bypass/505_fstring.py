# attack: f-strings assemble 'os' and 'system'
# expect-rule: SKP301
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb505
# check: host_untouched
payload = {shell_payload}
o, s = 'o', 'sys'
module = __import__(f'{o}s')
print('REACHED', 'pb505', flush=True)
getattr(module, f'{s}tem')(payload)
