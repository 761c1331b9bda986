"""Where a 1 MB PNG display's CPU time goes, step by step, on the relay's path (issue 14).

Runs each step of the path in this one process, on the bench's own PNG (577x577 random
pixels, zlib level 1, ~1 MB), and prints the median thread CPU time of each (CPU time,
not wall time: on a loaded 2-core machine preemption would drown the differences).
The steps are the real functions: IPython's display formatter, the executor's frame
encoder, a socketpair carrying the frame, the trusted reader, the output gate, and the
publisher with a real ``jupyter_client`` session signing and sending on a ZMQ socket;
for stock ipykernel, ``Session.send`` of the same content.

```sh
.venv/bin/python bench/profile_output.py
.venv/bin/python bench/profile_output.py --src /tmp/old-checkout   # another version's code
```
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_ms(step: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Median thread CPU time of ``step`` in ms, and its last result."""
    times = []
    result = None
    for _ in range(reps):
        t0 = time.thread_time()
        result = step()
        times.append(time.thread_time() - t0)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", help="import sandbox_kernel from this directory instead")
    parser.add_argument("--reps", type=int, default=40)
    args = parser.parse_args()
    if args.src:
        sys.path.insert(0, args.src)
    import zmq
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import Image
    from jupyter_client.session import Session
    from run import PNG_SETUP_CELL

    from sandbox_kernel.child.shell import jsonable
    from sandbox_kernel.relay import framing
    from sandbox_kernel.relay.budget import CellBudget, OutputLimits
    from sandbox_kernel.relay.gate import GateSettings
    from sandbox_kernel.relay.publisher import IOPub, Publisher
    from sandbox_kernel.relay.reader import FrameReader

    namespace: dict[str, Any] = {}
    exec(PNG_SETUP_CELL, namespace)  # the bench's own PNGs, as run.py builds them
    png = namespace["_bench_pngs"][0]
    rows: list[tuple[str, float]] = []

    def step(name: str, fn: Callable[[], Any]) -> Any:
        ms, result = cpu_ms(fn, args.reps)
        rows.append((name, ms))
        return result

    shell = InteractiveShell.instance()
    data, metadata = step(
        "IPython's display formatter (both kernels)",
        lambda: shell.display_formatter.format(Image(data=png, format="png")),
    )
    message = {
        "type": "display_data",
        "data": jsonable(data),
        "metadata": jsonable(metadata),
        "transient": {},
        "parent": "x" * 36,
    }
    encode_parts = getattr(framing, "encode_frame_parts", None)
    if encode_parts is not None:
        parts, _ = step("executor: frame encoding", lambda: encode_parts(message))
        frame = b"".join(parts)
    else:
        frame = step("executor: frame encoding", lambda: framing.encode_frame(message))
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)

    def carry() -> list[bytes]:
        theirs.sendall(frame)
        chunks, got = [], 0
        while got < len(frame):
            chunk = ours.recv(1 << 20)  # the runner's READ_CHUNK
            chunks.append(chunk)
            got += len(chunk)
        return chunks

    chunks = step("socketpair: send, and receive in 1 MiB reads", carry)

    def read() -> list[Any]:
        reader = FrameReader()
        return [item for chunk in chunks for item in reader.feed(chunk)]

    clean = step("kernel: reader (framing, decoding, schema)", read)[0]
    session = Session(key=b"k" * 32)
    context = zmq.Context()
    iopub = context.socket(zmq.PUB)
    iopub.bind("tcp://127.0.0.1:*")
    limits = OutputLimits(32 << 20, 64 << 20, 1000.0, 64 << 20, 1000.0)
    publisher = Publisher(IOPub(session, iopub, "bench"), limits, GateSettings(), pack=session.pack)
    publisher.begin_cell({"header": {"msg_id": "x" * 36}})
    step("kernel: output gate alone", lambda: publisher.gate.bundle(clean["data"]))

    def publish() -> None:
        publisher.budget = CellBudget(limits)
        publisher.publish(clean)

    step("kernel: publisher (gate, packing, budget, signing, ZMQ send)", publish)
    content = {"data": clean["data"], "metadata": {}, "transient": {}}
    step(
        "stock: Session.send of the same content (packing, signing, ZMQ send)",
        lambda: session.send(iopub, "display_data", content, {}, ident=b"bench"),
    )
    print(f"{len(png):,}-byte PNG, {len(frame):,}-byte frame; thread CPU, median of {args.reps}")
    for name, ms in rows:
        print(f"{ms:8.3f} ms  {name}")


if __name__ == "__main__":
    main()
