# attack: __builtins__ reached through a function, then __import__
# expect-rule: SKP221
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb521
# check: host_untouched
payload = {shell_payload}
space = (lambda: 0).__globals__['__builtins__']
loader = space['__import__'] if isinstance(space, dict) else space.__dict__['__import__']
print('REACHED', 'pb521', flush=True)
loader('os').system(payload)
