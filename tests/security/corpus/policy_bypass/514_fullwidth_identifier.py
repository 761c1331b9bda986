# attack: fullwidth letters that NFKC-normalise to os.system
# expect-rule: SKP304
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb514
# check: host_untouched
import ｏｓ

payload = {shell_payload}
print('REACHED', 'pb514', flush=True)
ｏｓ.ｓｙｓｔｅｍ(payload)
