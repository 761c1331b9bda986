# attack: answer the cell's own execute request over the relay, then keep running: the
#   kernel reports the cell finished (idle, limits no longer watched) while it still runs
# expect-rule: none
# stage: none (writing to an inherited descriptor is not a policy rule)
# barrier: replies carry a per-request secret token the cell cannot see; forged ones are dropped
# marker: REACHED kc406
# check: reply_after_cell_end
import json
import os
import pathlib
import select
import stat
import struct
import time


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


def forge(fd):
    # Sockets an earlier cell left open may have no reader or no peer: skip them
    # rather than hang or fail before the relay has had its share.
    for request in range(1, 1000):
        if not select.select([], [fd], [], 1)[1]:
            return
        try:
            os.write(fd, frame({'type': 'execute_reply', 'id': request, 'status': 'ok'}))
        except OSError:
            return


print('REACHED', 'kc406', flush=True)
for fd in sockets():
    forge(fd)
time.sleep(2)
pathlib.Path({cell_end_file}).write_text('the cell really ended')
