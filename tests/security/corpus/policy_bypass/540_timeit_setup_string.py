# attack: timeit runs a setup string built at run time, which the static check cannot read
# expect-rule: SKP202
# stage: runtime (timeit compiles the setup for its caller: the hook checks that code)
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb540
# check: host_untouched
import timeit

payload = {shell_payload}
setup = 'import os; os.system(' + repr(payload) + ')'
print('REACHED', 'pb540', flush=True)
timeit.Timer('pass', setup).timeit(1)
