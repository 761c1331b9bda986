# attack: connect to a host service on an abstract unix socket (no file to protect)
# expect-rule: SKP204
# stage: static
# barrier: network namespace (abstract names are per netns) / seccomp and Landlock scope
# marker: REACHED net203
# check: no_listener_contact
import socket

print('REACHED', 'net203', flush=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect('\0' + {abstract_name})
sock.sendall(b'pwned')
