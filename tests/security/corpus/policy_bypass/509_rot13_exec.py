# attack: exec() of a codecs rot13 payload
# expect-rule: SKP302
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb509
# check: host_untouched
import codecs

payload = {shell_payload}
print('REACHED', 'pb509', flush=True)
exec(codecs.decode('vzcbeg bf; bf.flfgrz(cnlybnq)', 'rot13'))
