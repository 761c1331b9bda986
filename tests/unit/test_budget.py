"""The output budget (relay/budget.py) on crafted sizes and a clock the test moves: exact
caps, exact counts, the boundary byte on each side."""

from __future__ import annotations

from sandbox_kernel.relay.budget import (
    NOTICE_ALLOWANCE_BYTES,
    CellBudget,
    NoticeBudget,
    OutputLimits,
    RateLimit,
)
from tests.unit.conftest import Clock

LIMITS = OutputLimits(
    max_message_bytes=1000,
    max_cell_bytes=5000,
    max_messages_per_s=4,
    max_comm_bytes=3000,
    max_comm_messages_per_s=2,
)


# -- RateLimit -------------------------------------------------------------------------


def test_a_rate_starts_with_one_seconds_worth_and_refills_at_the_rate(clock: Clock) -> None:
    rate = RateLimit(4)
    assert [rate.take() for _ in range(6)] == [True] * 4 + [False] * 2
    clock.now += 0.5  # half a second at 4/s: two more
    assert [rate.take() for _ in range(3)] == [True, True, False]


def test_a_long_pause_buys_no_more_than_one_seconds_burst(clock: Clock) -> None:
    rate = RateLimit(4)
    assert all(rate.take() for _ in range(4))
    clock.now += 3600
    assert [rate.take() for _ in range(5)] == [True] * 4 + [False]


# -- CellBudget.admit ------------------------------------------------------------------


def test_message_size_limit_is_inclusive(clock: Clock) -> None:
    cell = CellBudget(LIMITS)
    assert cell.admit("stream", 1000) is None
    assert cell.admit("stream", 1001) == "size"
    assert (cell.sent_bytes, cell.dropped_bytes, cell.dropped_messages) == (1000, 1001, 1)
    assert not cell.capped


def test_the_cell_cap_admits_up_to_its_last_byte_then_nothing(clock: Clock) -> None:
    cell = CellBudget(LIMITS)
    for _ in range(4):
        assert cell.admit("stream", 1000) is None
        clock.now += 1  # keep the rate out of it
    assert cell.admit("display_data", 999) is None
    assert cell.sent_bytes == 4999
    assert not cell.capped
    assert cell.admit("stream", 2) == "cell"
    assert cell.capped
    assert cell.admit("stream", 1) is None  # the last byte still fits
    assert cell.admit("stream", 1) == "cell"
    assert (cell.sent_bytes, cell.dropped_bytes, cell.dropped_messages) == (5000, 3, 2)


def test_the_rate_drops_what_comes_too_fast(clock: Clock) -> None:
    cell = CellBudget(LIMITS)
    reasons = [cell.admit("stream", 10) for _ in range(6)]
    assert reasons == [None] * 4 + ["rate"] * 2
    assert (cell.sent_bytes, cell.dropped_bytes, cell.dropped_messages) == (40, 20, 2)
    assert not cell.capped  # a rate drop is not the cap


def test_a_replay_is_past_the_rate_but_not_past_the_caps(clock: Clock) -> None:
    cell = CellBudget(LIMITS)
    for _ in range(4):
        cell.admit("stream", 10)
    assert cell.admit("update_display_data", 10) == "rate"
    assert cell.admit("update_display_data", 10, replay=True) is None
    assert cell.admit("update_display_data", 1001, replay=True) == "size"
    # 50 bytes sent: four replays of 1000 fit, a fifth would pass the cap of 5000.
    assert [cell.admit("update_display_data", 1000, replay=True) for _ in range(5)] == [
        None,
        None,
        None,
        None,
        "cell",
    ]
    assert cell.sent_bytes == 4050


def test_comms_have_a_lane_of_their_own(clock: Clock) -> None:
    cell = CellBudget(LIMITS)
    for kind in ("comm_open", "comm_msg", "comm_close"):
        assert cell.admit(kind, 1000) is None
        clock.now += 1
    # The comm cap (3000) is reached: comms stop, with their own reason ...
    assert cell.admit("comm_msg", 1) == "comm"
    assert not cell.capped
    # ... and the cell's output still has all of its own.
    assert cell.admit("stream", 1000) is None
    assert cell.sent_bytes == 4000
    # The comm rate (2/s) is the comms' alone too.
    clock.now += 1
    fresh = CellBudget(LIMITS)
    assert [fresh.admit("comm_msg", 1) for _ in range(3)] == [None, None, "rate"]
    assert fresh.admit("stream", 1) is None


def test_each_reason_is_new_once_per_cell(clock: Clock) -> None:
    cell = CellBudget(LIMITS)
    assert [cell.first_time("size"), cell.first_time("size"), cell.first_time("rate")] == [
        True,
        False,
        True,
    ]
    assert CellBudget(LIMITS).first_time("size")


# -- CellBudget.charge (the sandbox's own notices) -----------------------------------------


def test_notices_may_go_past_a_full_cell_by_the_allowance_only(clock: Clock) -> None:
    cell = CellBudget(LIMITS)
    for _ in range(5):
        assert cell.admit("stream", 1000) is None
        clock.now += 1
    assert cell.capped is False
    assert cell.charge(NOTICE_ALLOWANCE_BYTES)  # exactly to the allowance
    assert not cell.charge(1)
    assert cell.sent_bytes == 5000 + NOTICE_ALLOWANCE_BYTES
    # The kernel's own few notices (a limit hit, the state restored) always go out.
    assert cell.charge(500, essential=True)
    assert cell.sent_bytes == 5500 + NOTICE_ALLOWANCE_BYTES
    # Charged notices count against the output: no more output fits.
    assert cell.admit("stream", 1) == "cell"


# -- NoticeBudget ------------------------------------------------------------------------


def test_three_of_a_kind_then_counted(clock: Clock) -> None:
    notices = NoticeBudget()
    shown = [notices.admit("malformed") for _ in range(10)]
    assert shown == [True] * 3 + [False] * 7
    assert notices.suppressed == {"malformed": 7}
    assert notices.total("malformed") == 10
    assert notices.total("seccomp") == 0


def test_a_once_kind_is_shown_once(clock: Clock) -> None:
    notices = NoticeBudget()
    assert [notices.admit("violation") for _ in range(4)] == [True, False, False, False]
    assert notices.total("violation") == 4


def test_many_kinds_together_are_held_to_the_overall_rate(clock: Clock) -> None:
    notices = NoticeBudget(per_kind=3, max_per_s=20)
    shown = sum(notices.admit(f"kind-{i}") for i in range(50))
    assert shown == 20
    assert sum(notices.suppressed.values()) == 30
    clock.now += 0.5
    assert sum(notices.admit(f"later-{i}") for i in range(50)) == 10
