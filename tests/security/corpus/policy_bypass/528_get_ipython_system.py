# attack: get_ipython().system(...)
# expect-rule: SKP101
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb528
# check: host_untouched
payload = {shell_payload}
print('REACHED', 'pb528', flush=True)
get_ipython().system(payload)
