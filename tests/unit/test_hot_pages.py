"""Copying ahead the pages the cells write (child/hot_pages.py): what is learned, what is
copied, and, in a real forked process, that copied pages cost the next writes no fault
and change no byte."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import mmap
import os
import resource
import signal
import struct
from collections.abc import Iterator

import pytest

from sandbox_kernel.child import hot_pages
from sandbox_kernel.child.hot_pages import (
    PAGE_SIZE,
    RELEARN_EVERY,
    HotPages,
    clip_runs,
    own_pages,
    page_runs,
)

P = PAGE_SIZE
PRESENT, EXCLUSIVE = 1 << 63, 1 << 56


def _maps(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _pagemap(pages: dict[int, int]):
    """A fake /proc/self/pagemap: page number -> entry (absent pages read as 0)."""

    def read(offset: int, size: int) -> bytes:
        first = offset // 8
        return b"".join(struct.pack("<Q", pages.get(first + i, 0)) for i in range(size // 8))

    return read


def test_only_present_pages_mapped_by_this_process_alone_are_learned() -> None:
    base = 0x10000
    maps = _maps(f"{base * P:x}-{(base + 8) * P:x} rw-p 00000000 00:00 0")
    pagemap = _pagemap(
        {
            base + 0: PRESENT | EXCLUSIVE,  # written since the fork
            base + 1: PRESENT,  # still shared with the snapshot
            base + 2: EXCLUSIVE,  # not present (swapped, or never touched)
            base + 5: PRESENT | EXCLUSIVE,
            base + 6: PRESENT | EXCLUSIVE,
        }
    )
    assert own_pages(maps, pagemap) == [base, base + 5, base + 6]


def test_near_pages_are_copied_in_one_call_and_the_budget_holds() -> None:
    # Pages 0 and 3 are two apart: one call copies 0..3 (and four pages count).
    assert page_runs([0, 3, 40, 41], max_pages=100) == [(0, 4), (40 * P, 2)]
    assert page_runs([0, 3, 40, 41], max_pages=5) == [(0, 4), (40 * P, 1)]
    assert page_runs([0, 3, 40, 41], max_pages=6) == [(0, 4), (40 * P, 2)]
    assert page_runs([0, 3], max_pages=2) == [(0, 1)]
    assert page_runs([7], max_pages=0) == []


def test_files_shared_and_read_only_mappings_and_big_arrays_are_never_read() -> None:
    read: list[int] = []

    def pagemap(offset: int, size: int) -> bytes:
        read.append(offset // 8)
        return bytes(size)

    big = hot_pages.MAX_MAPPING_BYTES + P
    maps = _maps(
        "1000000-1001000 rw-p 00000000 08:01 42 /work/data.bin",  # a file, private
        "2000000-2001000 rw-s 00000000 00:01 7 /dev/zero (deleted)",  # shared
        "3000000-3001000 r--p 00000000 00:00 0",  # read-only
        f"4000000-{0x4000000 + big:x} rw-p 00000000 00:00 0",  # a notebook's array
        "5000000-5001000 rw-p 00000000 00:00 0 [heap]",
        "6000000-6001000 rw-p 00000000 00:00 0 [stack]",
        "7000000-7001000 rw-p 00000000 00:00 0",
    )
    own_pages(maps, pagemap)
    assert read == [0x5000000 // P, 0x6000000 // P, 0x7000000 // P]


def test_runs_are_clipped_to_the_mappings_that_exist_now() -> None:
    runs = [(10 * P, 4), (20 * P, 10), (40 * P, 2)]
    ranges = [(0, 12 * P), (22 * P, 25 * P), (26 * P, 28 * P)]
    assert clip_runs(runs, ranges) == [(10 * P, 2), (22 * P, 3), (26 * P, 2)]
    assert clip_runs(runs, []) == []


BASE = 0x1000  # the fake process's one mapping: pages BASE .. BASE + 4095


class _FakeHotPages(HotPages):
    """HotPages over a fake /proc/self/maps and pagemap, with madvise recorded."""

    def __init__(self, written: list[set[int]]) -> None:
        super().__init__(pagemap_fd=-1, max_pages=1024)
        # What each cell writes, in turn (the last repeated).
        self.written = written
        self.cell = 0
        self.calls: list[tuple[int, int]] = []
        self.learned = 0
        self._madvise = self._record

    def _record(self, address: int, length: int, advice: int) -> int:
        assert advice == hot_pages.MADV_POPULATE_WRITE
        self.calls.append((address // P, length // P))
        return 0

    def _maps(self) -> str:
        return _maps(f"{BASE * P:x}-{(BASE + 4096) * P:x} rw-p 00000000 00:00 0")

    def _read_pagemap(self, offset: int, size: int) -> bytes:
        self.learned += 1
        written = self.written[min(self.cell, len(self.written) - 1)]
        return _pagemap({BASE + p: PRESENT | EXCLUSIVE for p in written})(offset, size)

    def run_cell(self) -> None:
        """A cell ends: learn (if it is time), fork, copy ahead."""
        self.before_drop()
        self.cell += 1
        self.after_fork(stop=lambda: False)


def test_two_clean_cycles_are_learned_and_only_what_both_wrote_is_copied() -> None:
    hot = _FakeHotPages([{1, 2, 3, 100}, {2, 3, 200}, {2, 3, 300}])
    hot.run_cell()  # learns the first cell's pages
    assert hot.copied == 0
    hot.run_cell()  # learns the second's: 2 and 3 were written by both
    assert hot.copied == 2
    assert hot.calls == [(BASE + 2, 2)]
    copying, learning = 0, 0
    for _ in range(3 * (RELEARN_EVERY + 2)):
        before = hot.learned
        hot.run_cell()
        copying += hot.copied > 0
        learning += hot.learned > before
    # Two clean cycles, learned from, in every RELEARN_EVERY + 2; copied ahead in the others.
    assert learning == 6
    assert copying == 3 * (RELEARN_EVERY + 2) - 6
    # In chunks, so that a waiting command is seen within about 0.1 ms.
    hot = _FakeHotPages([set(range(500))])
    hot.run_cell()
    hot.run_cell()
    assert max(pages for _, pages in hot.calls) == hot_pages.CHUNK_PAGES
    assert hot.copied == 500


def test_a_waiting_command_stops_the_copy() -> None:
    hot = _FakeHotPages([set(range(200))])
    hot.before_drop()
    hot.after_fork(stop=lambda: False)
    hot.before_drop()
    # One look before anything is read, then one before each chunk.
    looks = iter([False, False, False, True])
    hot.after_fork(stop=lambda: next(looks))
    assert hot.cut_short
    assert hot.copied == 2 * hot_pages.CHUNK_PAGES


def test_a_command_already_waiting_is_not_delayed_by_reading_proc() -> None:
    """Cells back to back: the next command is often waiting when the snapshot has been
    forked; then neither /proc/self/maps nor the memory use is read."""
    hot = _FakeHotPages([set(range(200))])
    hot.before_drop()
    hot.after_fork(stop=lambda: False)
    hot.before_drop()
    reads: list[str] = []

    def read_maps() -> str:
        reads.append("maps")
        return ""

    def read_memory_use() -> bool:
        reads.append("statm")
        return False

    hot._maps = read_maps  # type: ignore[method-assign]
    hot._near_memory_limit = read_memory_use  # type: ignore[method-assign]
    hot.after_fork(stop=lambda: True)
    assert hot.cut_short
    assert hot.copied == 0
    assert reads == []


def test_nothing_is_copied_near_the_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The copies are charged to the sandbox's memory cgroup: none where the executor
    and they would pass half the limit (where rollback itself stops)."""
    hot = _FakeHotPages([set(range(200))])
    hot.memory_limit = 512 * 2**20
    hot.run_cell()
    monkeypatch.setattr(hot_pages, "resident_bytes", lambda: 100 * 2**20)
    hot.run_cell()
    assert hot.copied == 200
    monkeypatch.setattr(hot_pages, "resident_bytes", lambda: 254 * 2**20)  # + 4 MiB > 256
    hot.run_cell()
    assert hot.copied == 0


def test_the_copy_stops_when_the_cgroup_has_no_memory_left() -> None:
    hot = _FakeHotPages([set(range(0, 400, 4))])  # 100 runs of one page

    def full(address: int, length: int, advice: int) -> int:
        hot.calls.append((address // P, length // P))
        ctypes.set_errno(errno.ENOMEM)
        return -1

    hot.run_cell()
    hot._madvise = full
    hot.run_cell()
    assert len(hot.calls) == 1, "it went on after ENOMEM"
    assert hot.copied == 0
    assert hot.unavailable is None  # next time, maybe


def test_why_nothing_was_copied_is_said() -> None:
    """%sandbox shows "pages copied ahead" with the reason when it is 0 or cut short
    (a 0 alone reads as a setting that does nothing); a full copy needs none."""
    hot = _FakeHotPages([set(range(200))])
    hot.run_cell()
    assert (hot.copied, hot.note) == (0, hot_pages.LEARNING)
    hot.run_cell()
    assert (hot.copied, hot.note) == (200, None)
    hot.before_drop()
    hot.after_fork(stop=lambda: True)
    assert (hot.copied, hot.note) == (0, hot_pages.CUT_SHORT)
    hot.before_drop()
    looks = iter([False, False, True])
    hot.after_fork(stop=lambda: next(looks))
    assert (hot.copied, hot.note) == (hot_pages.CHUNK_PAGES, hot_pages.CUT_SHORT)
    hot._near_memory_limit = lambda: True  # type: ignore[method-assign]
    hot.before_drop()
    hot.after_fork(stop=lambda: False)
    assert (hot.copied, hot.note) == (0, hot_pages.NEAR_MEMORY_LIMIT)
    # Turned off: copy_ahead_off says why, and no note beside it.
    off = _FakeHotPages([set(range(200))])
    off.unavailable = "turned off"
    off.after_fork(stop=lambda: False)
    assert off.note is None
    # The kernel owns the words, for the keys the executor sends and nothing else.
    from sandbox_kernel.kernel.cellrun import COPY_AHEAD_NOTES, copy_ahead_note

    for key in (hot_pages.LEARNING, hot_pages.CUT_SHORT, hot_pages.NEAR_MEMORY_LIMIT):
        assert copy_ahead_note(key) == COPY_AHEAD_NOTES[key]
    for forged in ("<b>anything a cell sends</b>", ["learning"], None, 3):
        assert copy_ahead_note(forged) is None


def test_off_where_it_cannot_work() -> None:
    assert HotPages(None, max_pages=1024).unavailable
    off = HotPages(os.open("/dev/null", os.O_RDONLY), max_pages=0)
    assert off.unavailable
    assert "snapshot_copy_ahead_mb" in off.unavailable
    off.give_up("done")
    assert off.pagemap_fd is None


# -- in a real process ----------------------------------------------------------------------


@contextlib.contextmanager
def _snapshot() -> Iterator[None]:
    """A forked copy that shares every page while it lives, as the executor's snapshot does."""
    pid = os.fork()
    if pid == 0:
        signal.pause()
        os._exit(0)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _faults_writing(buffer: mmap.mmap, pages: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(pages):
        buffer[i * P] = buffer[i * P] ^ 0xFF
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_pages_copied_ahead_are_written_without_a_fault_and_keep_their_bytes() -> None:
    pages = 256
    buffer = mmap.mmap(-1, pages * P, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buffer[:] = os.urandom(pages * P)
    hot = HotPages(os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC), max_pages=1 << 16)
    try:
        for cycle in range(2):
            with _snapshot():
                # Cells write every page while a snapshot shares them: one copy each, with
                # nothing copied ahead (the two cycles the pages are learned from).
                assert _faults_writing(buffer, pages) >= pages * 0.9
                hot.before_drop()
            if cycle == 0:
                hot.after_fork(stop=lambda: False)
                assert hot.copied == 0
        expected = buffer[:]
        with _snapshot():
            hot.after_fork(stop=lambda: False)
            assert hot.copied >= pages
            assert not hot.cut_short
            assert buffer[:] == expected, "copying ahead changed the executor's memory"
            faults = _faults_writing(buffer, pages)
    finally:
        hot.give_up("done")
    assert faults <= pages * 0.1
