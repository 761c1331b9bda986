# attack: object.__subclasses__() to os._wrap_close, then its __init__.__globals__['system']
# expect-rule: SKP220
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb519
# check: host_untouched
payload = {shell_payload}
wrap = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]
print('REACHED', 'pb519', flush=True)
wrap.__init__.__globals__['system'](payload)
