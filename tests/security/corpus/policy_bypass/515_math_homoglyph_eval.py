# attack: mathematical bold letters that NFKC-normalise to eval
# expect-rule: SKP304
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb515
# check: host_untouched
payload = {shell_payload}
print('REACHED', 'pb515', flush=True)
𝐞𝐯𝐚𝐥("__import__('os').system(payload)")
