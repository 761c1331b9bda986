# attack: pickle.loads of a pickle whose REDUCE calls os.system
# expect-rule: SKP310
# stage: static
# barrier: mount namespace / landlock (canaries), pid namespace / Landlock signal scope
#   (marker)
# marker: REACHED pb512
# check: host_untouched
import pickle

payload = {shell_payload}
blob = b'cos\nsystem\n(V' + payload.encode('raw_unicode_escape') + b'\ntR.'
print('REACHED', 'pb512', flush=True)
pickle.loads(blob)
