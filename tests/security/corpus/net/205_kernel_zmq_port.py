# attack: connect to the kernel's own ZMQ shell port and speak ZMTP to it
# expect-rule: SKP204
# stage: static
# barrier: network namespace (own loopback) / seccomp (no socket(2)) and Landlock TCP
# marker: REACHED net205
# check: no_zmq_contact
import socket
import time

print('REACHED', 'net205', flush=True)
conn = socket.create_connection(('127.0.0.1', {shell_port}), timeout=3)
# ZMTP 3.0 greeting: signature, version, NULL mechanism
conn.sendall(b'\xff' + bytes(8) + b'\x7f\x03\x00NULL' + bytes(16) + b'\x00' + bytes(31))
print('greeting', conn.recv(64))
time.sleep(2)  # hold the connection so that the host can see it
