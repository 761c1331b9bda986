# attack: 'so'[::-1] and 'metsys'[::-1]
# expect-rule: SKP301
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb506
# check: host_untouched
payload = {shell_payload}
module = __import__('so'[::-1])
print('REACHED', 'pb506', flush=True)
getattr(module, 'metsys'[::-1])(payload)
