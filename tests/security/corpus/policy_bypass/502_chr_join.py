# attack: module and attribute names joined from chr() codes
# expect-rule: SKP301
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb502
# check: host_untouched
payload = {shell_payload}
module = __import__(''.join(map(chr, [111, 115])))
run = getattr(module, ''.join(chr(c) for c in [115, 121, 115, 116, 101, 109]))
print('REACHED', 'pb502', flush=True)
run(payload)
