# attack: __import__ of 'o' + 's', then .system
# expect-rule: SKP301
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb501
# check: host_untouched
payload = {shell_payload}
print('REACHED', 'pb501', flush=True)
__import__('o' + 's').system(payload)
