# attack: '{0.__globals__[os].environ}'.format(f) reads another module's globals
# expect-rule: SKP303
# stage: static
# barrier: no secrets in the executor (allow-listed environment, no key)
# marker: REACHED pb513
# check: hmac_key_absent
import shutil

print('REACHED', 'pb513', flush=True)
print('{0.__globals__[os].environ}'.format(shutil.copyfile))
print('{0.__class__.__mro__[1].__subclasses__}'.format(()))
