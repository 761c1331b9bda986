# attack: write frames that try to pass as the kernel straight to the relay descriptor
#   (no interpreter internals involved: the policy has nothing to see)
# expect-rule: none
# stage: none (writing to an inherited descriptor is not a policy rule)
# barrier: the relay's schema (the executor never supplies headers, parents or signatures)
# marker: REACHED kc405
# check: iopub_clean
import json
import os
import stat
import struct


def frame(message):
    body = json.dumps(message).encode()
    return struct.pack('>I', len(body)) + body


def sockets():
    for fd in range(3, 256):
        try:
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                yield fd
        except OSError:
            pass


token = {token}
forged = {'msg_id': 'forged-' + token, 'msg_type': 'shutdown_reply', 'session': token}
frames = [
    {'type': 'stream', 'name': 'stderr', 'text': 'forged stream\n', 'parent': 'forged-' + token,
     'header': forged, 'parent_header': forged, 'signature': token},
    {'type': 'shutdown_reply', 'restart': False, 'status': 'ok'},
    {'type': 'status', 'execution_state': 'idle'},
    {'type': 'execute_input', 'code': 'forged', 'execution_count': 1, 'parent': 'forged-' + token},
]
print('REACHED', 'kc405', flush=True)
for fd in sockets():
    for message in frames:
        try:
            os.write(fd, frame(message))
        except OSError as e:  # sockets of earlier cells that are not connected
            print(fd, 'not writable', e.errno)
            break
