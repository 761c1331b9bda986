# attack: e = eval, then e(...)
# expect-rule: SKP305
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb516
# check: host_untouched
payload = {shell_payload}
e = eval
print('REACHED', 'pb516', flush=True)
e("__import__('os').system(payload)")
