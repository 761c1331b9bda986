# attack: %sx (and !!) capture a shell command's output
# expect-rule: SKP101
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb532
# check: host_untouched
payload = {shell_payload}
print('REACHED', 'pb532', flush=True)
lines = %sx sh -c {shell_payload}
print(lines)
