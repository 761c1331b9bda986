# attack: connect to a pathname unix socket outside the workspace (like an ssh-agent)
# expect-rule: SKP204
# stage: static
# barrier: mount namespace (path not visible) / seccomp (no socket(2))
# marker: REACHED net204
# check: no_listener_contact
import socket

print('REACHED', 'net204', flush=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.connect({unix_path})
sock.sendall(b'pwned')
