# attack: import the executor's own audit module and empty its event table, then run
#   code only the runtime hook could see (a module written by the cell)
# expect-rule: SKP209
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb538
# check: host_untouched
import pathlib

from sandbox_kernel.child import audit

payload = {shell_payload}
module = 'helper_' + {token}
pathlib.Path(module + '.py').write_text('import os\nos.system(' + repr(payload) + ')\n')
saved = dict(audit._hook.handlers) if audit._hook is not None else {}
try:
    if audit._hook is not None:
        audit._hook.handlers.clear()
    print('REACHED', 'pb538', flush=True)
    __import__(module)
finally:
    if audit._hook is not None:  # test hygiene: later attacks share this kernel
        audit._hook.handlers.update(saved)
