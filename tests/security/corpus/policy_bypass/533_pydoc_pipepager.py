# attack: pydoc.pipepager(text, cmd) runs cmd through a shell in a library frame
# expect-rule: SKP202
# stage: runtime
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb533
# check: host_untouched
# xfail-on: BUG: the process is started by pydoc (a library frame), which the audit hook only
#   records: the classroom policy (SKP202 deny) lets pydoc.pipepager run any shell command
import pydoc

print('REACHED', 'pb533', flush=True)
pydoc.pipepager('', {shell_payload})
