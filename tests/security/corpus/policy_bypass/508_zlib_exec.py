# attack: exec() of a zlib-compressed payload
# expect-rule: SKP302
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb508
# check: host_untouched
import zlib

payload = {shell_payload}
blob = bytes.fromhex('789ccbcc2dc82f2a51c82fb60662bde2cae292d45c8d82c4ca9cfcc4144d00a5b80ae9')
print('REACHED', 'pb508', flush=True)
exec(zlib.decompress(blob))
