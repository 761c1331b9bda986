# attack: read a host file outside the workspace with plain open()
# expect-rule: none
# stage: none (the policy does not govern reads: the OS sandbox is the only barrier)
# barrier: mount namespace / landlock
# marker: REACHED fs101
# check: canary_unread
print('REACHED', 'fs101', flush=True)
print(open({canary_read}).read())
