# attack: reach a host service through the standard library's HTTP client
# expect-rule: SKP204
# stage: runtime
# barrier: network namespace (own loopback) / seccomp (no socket(2)) and Landlock TCP
# marker: REACHED net206
# check: no_listener_contact
# xfail-on: BUG: the classroom policy denies sockets (SKP204) but urllib's connect is
#   classified as a library acting on its own and only recorded
import urllib.request

print('REACHED', 'net206', flush=True)
urllib.request.urlopen('http://127.0.0.1:' + str({tcp_port}) + '/pwned', timeout=3)
