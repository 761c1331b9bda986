# attack: read a host file with a shell escape
# expect-rule: SKP101
# stage: static
# barrier: mount namespace / landlock
# marker: REACHED fs102
# check: canary_unread
print('REACHED', 'fs102', flush=True)
!cat {canary_read}
