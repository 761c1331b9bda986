# attack: connect to the kernel's ZMQ shell port with pyzmq (libzmq opens the socket in C)
#   and send an unsigned kernel_info_request
# expect-rule: SKP204
# stage: static
# barrier: network namespace (own loopback) / seccomp (no socket(2)) and Landlock TCP
# marker: REACHED net207
# check: no_zmq_contact
import json

import zmq

print('REACHED', 'net207', flush=True)
context = zmq.Context()
sock = context.socket(zmq.DEALER)
sock.linger = 0
header = {'msg_id': 'x', 'msg_type': 'kernel_info_request', 'session': 'x', 'username': 'x',
          'version': '5.3', 'date': ''}
sock.connect('tcp://127.0.0.1:' + str({shell_port}))
sock.send_multipart([b'<IDS|MSG>', b'', json.dumps(header).encode(), b'{}', b'{}', b'{}'])
print('answer', sock.poll(2000))
