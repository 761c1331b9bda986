# attack: reach a host service through the standard library's HTTP client
# expect-rule: SKP204
# expect-rule@landlock: none (seccomp refuses the socket: no policy rule is reached)
# stage: runtime
# stage@landlock: none (seccomp refuses socket(2) itself, before there is a connect for the
#   hook to see: the URLError is EPERM)
# barrier: network namespace (own loopback) / seccomp (no socket(2)) and Landlock TCP
# marker: REACHED net206
# check: no_listener_contact
import urllib.request

print('REACHED', 'net206', flush=True)
urllib.request.urlopen('http://127.0.0.1:' + str({tcp_port}) + '/pwned', timeout=3)
