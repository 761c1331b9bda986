# attack: connect to a TCP service on the host's loopback
# expect-rule: SKP204
# stage: static
# barrier: network namespace (own loopback) / seccomp (no socket(2)) and Landlock TCP
# marker: REACHED net201
# check: no_listener_contact
import socket

print('REACHED', 'net201', flush=True)
conn = socket.create_connection(('127.0.0.1', {tcp_port}), timeout=3)
conn.sendall(b'pwned')
