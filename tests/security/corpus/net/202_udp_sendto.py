# attack: send a datagram to a UDP service on the host's loopback
# expect-rule: SKP204
# stage: static
# barrier: network namespace (own loopback) / seccomp (no socket(2))
# marker: REACHED net202
# check: no_listener_contact
import socket

print('REACHED', 'net202', flush=True)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    sock.sendto(b'pwned', ('127.0.0.1', {udp_port}))
