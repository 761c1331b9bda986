# attack: search every object of the executor for the HMAC key (a uuid4 string)
# expect-rule: SKP207
# stage: static
# barrier: no key in the executor (it is exec'd with an allow-listed environment)
# marker: REACHED kc402
# check: hmac_key_absent
import gc
import re

uuid = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')
print('REACHED', 'kc402', flush=True)
found = set()
for obj in gc.get_objects():
    values = obj.values() if isinstance(obj, dict) else ()
    if isinstance(obj, (list, tuple)):
        values = obj
    for value in list(values):
        if isinstance(value, bytes):
            value = value.decode('latin-1')
        if isinstance(value, str) and len(value) < 4096:
            found.update(uuid.findall(value))
    for name in ('key', 'hmac', 'signature_scheme', 'session'):
        try:
            value = getattr(obj, name, None)
        except Exception:  # ctypes' cdll.key tries to load a library named 'key'
            continue
        if isinstance(value, (bytes, str)):
            found.add(repr(value))
print(sorted(found))
