# attack: look for the HMAC key in the environment and /proc of the kernel and the executor,
#   then read the connection file named on the kernel's command line
# expect-rule: none
# stage: none (reading /proc is not a policy rule: the key is simply not in the executor)
# barrier: no key in the executor (scrubbed environment, pid namespace / not dumpable kernel)
# marker: REACHED kc401
# check: hmac_key_absent
import os
import re

print('REACHED', 'kc401', flush=True)
named = set()
for pid in ('self', '1', str({kernel_pid})):
    for what in ('environ', 'cmdline'):
        path = '/proc/' + pid + '/' + what
        try:
            data = open(path, 'rb').read()
        except OSError as e:
            print(path, 'denied', e.errno)
            continue
        print(path, data)
        named.update(re.findall(rb'[^\x00=]+\.json', data))
print('environ', dict(os.environ))
for path in sorted(named):
    try:
        print(path, open(path, 'rb').read())
    except OSError as e:
        print(path, 'denied', e.errno)
