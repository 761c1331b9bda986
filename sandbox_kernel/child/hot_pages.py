"""The next cell's copy-on-write work, done ahead while the executor waits.

After every reply the executor forks the snapshot for the next cell (``snapshot.py``).
From then on the two processes share every page, and the executor's first write to
each one copies it, inside the next cell. A trivial cell writes the same 550-750
pages each time (reference counts and IPython's bookkeeping all over the heap) at
about 3 us a copy on these machines: most of what rollback adds to a cell
(bench/README.md, "Where a trivial cell's time goes").

So the executor learns which pages the cells write: just before a snapshot is
dropped, the pages it maps alone (``/proc/self/pagemap``) are those written since
that snapshot was forked, every other page being still shared with it. Once the
next snapshot is forked and announced, it copies them for itself
(``MADV_POPULATE_WRITE`` faults a page in writable without changing a byte of it),
a few dozen at a time, until the next command arrives. The snapshot is never
touched: it holds the state from before the next cell as it did.

It pays where a cell comes after a pause (a person reading, typing): the copying
fits in the pause, and the cell finds its pages already copied. Cells sent back to
back (Run All, nbclient) leave a millisecond or two: the copy is cut short there,
and on two cores it competes with the kernel and the client for the same time.
Copying from a thread of low priority beside the cell was tried: it got no core
while cells came back to back and slowed them (bench/README.md).

What it costs: the copied pages are private to the executor while the snapshot lives
(at most ``Limits.snapshot_copy_ahead_mb``); a page the next cell does not write was
copied for nothing. Mappings larger than ``MAX_MAPPING_BYTES`` (a notebook's arrays)
are never read or copied. Where ``/proc`` or ``MADV_POPULATE_WRITE`` (Linux 5.14) is
not available nothing is copied, and cells pay their faults as before.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

from .snapshot import resident_bytes

__all__ = ["HotPages"]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
MADV_POPULATE_WRITE = 23
# A mapping this large is a notebook's data (numpy allocates its arrays in their own
# mappings), not the interpreter's: neither read nor copied.
MAX_MAPPING_BYTES = 64 << 20
# The learned pages are copied ahead of this many cells, then learned again.
RELEARN_EVERY = 16
# Pages one learning looks at, at most (64 MiB).
LEARN_MAX_PAGES = 16384
# Pages copied between two looks at whether a command is waiting (about 0.1 ms).
CHUNK_PAGES = 32
# Hot pages at most this far apart are copied in one call, the pages between them too.
JOIN_GAP_PAGES = 2

# Why the copy before a cell copied nothing or stopped early, as the reply's stats say
# it (the kernel owns the words %sandbox shows: kernel/cellrun.py COPY_AHEAD_NOTES).
LEARNING, CUT_SHORT, NEAR_MEMORY_LIMIT = "learning", "cut_short", "near_memory_limit"

# The top byte of a pagemap entry: bit 63 "present" (0x80) and bit 56 "exclusively
# mapped" (0x01). A page with both is one this process alone maps.
_OWN_PAGE = bytes(1 if b & 0x81 == 0x81 else 0 for b in range(256))
_RUNS = re.compile(rb"\x01+")


def _writable_private_mappings(maps: str) -> list[tuple[int, int]]:
    """Address ranges of the private, writable, anonymous mappings (and the heap, the stack)."""
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) < 5 or fields[1][:2] != "rw" or fields[1][3] != "p":
            continue
        name = fields[5].strip() if len(fields) > 5 else ""
        if name and name not in ("[heap]", "[stack]"):
            continue  # a file's data, or the vdso and the like
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if end - start <= MAX_MAPPING_BYTES:
            ranges.append((start, end))
    return ranges


def clip_runs(runs: list[tuple[int, int]], ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``runs`` (address, pages) that lie inside ``ranges`` (start, end).

    Runs learned cells ago may have been unmapped since, and the address reused by a
    mapping that a write must not touch (a file's shared mapping: writing to it, even
    the same bytes, dirties it and moves its modification time). Both lists are sorted.
    """
    clipped = []
    i = 0
    for address, pages in runs:
        end = address + pages * PAGE_SIZE
        while i < len(ranges) and ranges[i][1] <= address:
            i += 1
        j = i
        while j < len(ranges) and ranges[j][0] < end:
            low, high = max(address, ranges[j][0]), min(end, ranges[j][1])
            if high > low:
                clipped.append((low, (high - low) // PAGE_SIZE))
            j += 1
    return clipped


def own_pages(maps: str, read_pagemap: Callable[[int, int], bytes]) -> list[int]:
    """Numbers of the pages this process alone maps, in ascending order, at most
    ``LEARN_MAX_PAGES``. ``read_pagemap(offset, size)`` reads /proc/self/pagemap."""
    pages: list[int] = []
    for start, end in _writable_private_mappings(maps):
        first = start // PAGE_SIZE
        entries = read_pagemap(first * 8, (end - start) // PAGE_SIZE * 8)
        flags = entries[7::8].translate(_OWN_PAGE)
        for match in _RUNS.finditer(flags):
            pages.extend(range(first + match.start(), first + match.end()))
            if len(pages) >= LEARN_MAX_PAGES:
                return pages[:LEARN_MAX_PAGES]
    return pages


def page_runs(pages: list[int], max_pages: int) -> list[tuple[int, int]]:
    """(address, count) runs of the sorted page numbers, pages at most ``JOIN_GAP_PAGES``
    apart joined into one run (the pages between them copied too), ``max_pages`` in all."""
    runs: list[tuple[int, int]] = []
    budget = max_pages
    for page in pages:
        if runs and page - (runs[-1][0] + runs[-1][1]) <= JOIN_GAP_PAGES:
            first, count = runs[-1]
            added = page - (first + count) + 1
            if added > budget:
                break
            runs[-1] = (first, count + added)
        else:
            if budget < 1:
                break
            added = 1
            runs.append((page, 1))
        budget -= added
    return [(page * PAGE_SIZE, count) for page, count in runs]


class HotPages:
    """Learns the pages the cells write; copies them ahead of the following cells.

    Pages copied ahead are the executor's alone afterwards, written or not, so a cycle
    that copied ahead teaches nothing: the set is learned from two cycles that did not
    (the first two, then two in every ``RELEARN_EVERY``), and copied ahead in between.
    Only pages written in both are kept: much of what one cycle writes (new objects
    wherever the allocator found room, buffers) is not written again by the next, and
    copying it would cost the executor memory and the next cell its head start.
    """

    def __init__(self, pagemap_fd: int | None, *, max_pages: int, memory_limit: int = 0) -> None:
        # /proc/self/pagemap, opened while the executor was briefly dumpable
        # (isolation/privs.py open_own_proc_file): it cannot open it itself.
        self.pagemap_fd = pagemap_fd
        # Why copying ahead is off for the executor's life (no /proc, an old kernel).
        self.unavailable: str | None = None
        if pagemap_fd is None:
            self.unavailable = "/proc/self/pagemap could not be opened"
        elif max_pages <= 0:
            self.unavailable = "turned off (Limits.snapshot_copy_ahead_mb = 0)"
        self.max_pages = max_pages
        # The sandbox's memory limit (0: none). The copies are charged to the sandbox's
        # memory cgroup, and the limit met between cells would end the executor there,
        # where no snapshot takes over.
        self.memory_limit = memory_limit
        # The pages learned: (address, pages) runs.
        self.runs: list[tuple[int, int]] = []
        # The first of the two learnings, until the second.
        self.first_learned: set[int] | None = None
        # Cells since they were learned; whether anything was copied since the last fork.
        self.age = 0
        self.copied_since_fork = False
        self._madvise: Any = None
        # Of the last copy ahead: pages copied, and why it copied nothing or stopped
        # early (LEARNING, CUT_SHORT, NEAR_MEMORY_LIMIT), if it did.
        self.copied = 0
        self.note: str | None = None

    @property
    def cut_short(self) -> bool:
        """Whether a waiting command stopped the last copy ahead."""
        return self.note == CUT_SHORT

    def _maps(self) -> str | None:
        try:
            with open("/proc/self/maps") as f:
                return f.read()
        except OSError as exc:
            self.give_up(f"/proc/self/maps cannot be read ({exc.strerror})")
            return None

    def _read_pagemap(self, offset: int, size: int) -> bytes:
        assert self.pagemap_fd is not None
        return os.pread(self.pagemap_fd, size, offset)

    def before_drop(self) -> None:
        """Call while the last cell's snapshot is alive: its unwritten pages are shared."""
        if self.unavailable is not None or self.copied_since_fork:
            return
        maps = self._maps()
        if maps is None:
            return
        try:
            pages = own_pages(maps, self._read_pagemap)
        except OSError:
            return  # a mapping went away while it was read: next time
        if self.first_learned is None:
            self.first_learned = set(pages)
            return
        kept = [page for page in pages if page in self.first_learned]
        self.first_learned = None
        self.runs, self.age = page_runs(kept, self.max_pages), 0

    def _copying(self) -> bool:
        """Whether this cycle copies ahead (else it is left clean, to learn from)."""
        return (
            self.unavailable is None
            and bool(self.runs)
            and self.first_learned is None
            and self.age < RELEARN_EVERY
        )

    def after_fork(self, stop: Callable[[], bool]) -> None:
        """Call in the executor once the new snapshot is forked: copy the learned pages,
        a chunk at a time, until done or ``stop()`` says a command is waiting."""
        self.copied, self.note = 0, None
        copying = self._copying()
        self.age += 1
        self.copied_since_fork = copying
        if not copying:
            if self.unavailable is None:
                self.note = LEARNING
            return
        # Cells back to back: the next command is often here already, and reading
        # /proc/self/statm and /proc/self/maps first would only delay it.
        if stop():
            self.note = CUT_SHORT
            return
        if self._near_memory_limit():
            self.note = NEAR_MEMORY_LIMIT
            return
        maps = self._maps()
        if maps is not None:
            self._copy(clip_runs(self.runs, _writable_private_mappings(maps)), stop)

    def _near_memory_limit(self) -> bool:
        """Whether the copies could bring the sandbox near its memory limit: copying
        stays where rollback itself does (snapshots are skipped above half the limit),
        with room for the copies."""
        if not self.memory_limit:
            return False
        copies = self.max_pages * PAGE_SIZE
        return resident_bytes() + copies > self.memory_limit // 2

    def _copy(self, runs: Iterable[tuple[int, int]], stop: Callable[[], bool]) -> None:
        madvise = self._madvise or self._load_madvise()
        if madvise is None:
            return
        for address, pages in runs:
            done = 0
            while done < pages:
                if stop():
                    self.note = CUT_SHORT
                    return
                count = min(CHUNK_PAGES, pages - done)
                if madvise(address + done * PAGE_SIZE, count * PAGE_SIZE, MADV_POPULATE_WRITE):
                    import ctypes

                    failure = ctypes.get_errno()
                    if failure == errno.EINVAL:  # a kernel before 5.14
                        self.give_up("MADV_POPULATE_WRITE is not supported")
                        return
                    if failure == errno.ENOMEM:  # the memory cgroup is full (or unmapped)
                        return
                    break  # the mapping changed since it was read (EFAULT): skip it
                done += count
                self.copied += count

    def give_up(self, why: str) -> None:
        """Off for good, the descriptor closed (a promoted snapshot: it shows the dead
        executor's pages)."""
        self.unavailable, self.runs = why, []
        if self.pagemap_fd is not None:
            os.close(self.pagemap_fd)
            self.pagemap_fd = None

    def _load_madvise(self) -> Any:
        # ctypes because the standard library has no madvise for memory it did not map.
        # The audit hook sees these calls as the sandbox's own ("own" origin).
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            madvise = libc.madvise
        except (OSError, AttributeError, ImportError) as exc:
            self.give_up(f"madvise cannot be called ({exc})")
            return None
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        madvise.restype = ctypes.c_int
        self._madvise = madvise
        return madvise
