# attack: pkgutil.resolve_name('os:system') hides the callable from the static check
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb536
# check: host_untouched
import pkgutil

run = pkgutil.resolve_name('os:system')
print('REACHED', 'pb536', flush=True)
run({shell_payload})
