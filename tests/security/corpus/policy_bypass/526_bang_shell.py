# attack: !cmd shell escape
# expect-rule: SKP101
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb526
# check: host_untouched
print('REACHED', 'pb526', flush=True)
!sh -c {shell_payload}
