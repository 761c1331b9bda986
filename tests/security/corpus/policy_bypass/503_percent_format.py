# attack: '%s%s' % ('o', 's') as the module name
# expect-rule: SKP301
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb503
# check: host_untouched
payload = {shell_payload}
module = __import__('%s%s' % ('o', 's'))
print('REACHED', 'pb503', flush=True)
module.system(payload)
