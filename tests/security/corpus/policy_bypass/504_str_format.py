# attack: '{}{}'.format('sub', 'process') as the module name
# expect-rule: SKP301
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb504
# check: host_untouched
payload = {shell_payload}
module = __import__('{}{}'.format('sub', 'process'))
print('REACHED', 'pb504', flush=True)
module.run(['sh', '-c', payload])
