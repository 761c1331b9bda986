# attack: read ~/.ssh/id_rsa of the user who started the kernel with os.popen
# expect-rule: SKP202
# stage: static
# barrier: mount namespace (private HOME) / landlock
# marker: REACHED fs104
# check: canary_unread
import os

print('REACHED', 'fs104', flush=True)
print(os.popen('cat ' + {ssh_key} + ' 2>&1').read())
