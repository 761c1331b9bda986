# attack: overwrite a world-writable host file under the host's /tmp
# expect-rule: none
# stage: none (the policy lets cells write in /tmp, which is private inside the sandbox)
# barrier: mount namespace (private /tmp) / landlock
# marker: REACHED fs105
# check: canary_unchanged
print('REACHED', 'fs105', flush=True)
with open({canary_write}, 'w') as f:
    f.write('pwned')
