# attack: pydoc.pipepager(text, cmd) runs cmd through a shell in a library frame
# expect-rule: SKP202
# stage: static (pydoc's pagers are process creation; at run time pydoc acts for its caller)
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb533
# check: host_untouched
import pydoc

print('REACHED', 'pb533', flush=True)
pydoc.pipepager('', {shell_payload})
