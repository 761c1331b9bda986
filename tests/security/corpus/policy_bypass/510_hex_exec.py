# attack: exec() of bytes.fromhex(...)
# expect-rule: SKP302
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb510
# check: host_untouched
payload = {shell_payload}
print('REACHED', 'pb510', flush=True)
exec(bytes.fromhex('696d706f7274206f733b206f732e73797374656d287061796c6f616429'))
