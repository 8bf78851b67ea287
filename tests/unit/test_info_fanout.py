"""info.fanout: shared frames, trades once per connection, book messages conflated while backed up."""

from __future__ import annotations

from optivex.info.fanout import PRICE_DEPTH_BOOK, TOP_OF_BOOK, Fanout


class FakeSink:
    """A connection that records what it was sent and can be backed up at will."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.writing_paused = False

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)


def test_the_same_bytes_go_to_every_subscriber_of_a_subscription() -> None:
    fanout = Fanout()
    a, b, c = FakeSink(), FakeSink(), FakeSink()
    for sink in (a, b):
        fanout.subscribe(sink, "X", TOP_OF_BOOK, "s0", b"snap")
    fanout.subscribe(c, "X", PRICE_DEPTH_BOOK, "d0", b"dsnap")
    frame = b"top1"
    fanout.book("X", TOP_OF_BOOK, "s1", frame)
    assert a.sent == b.sent == [b"snap", b"top1"]
    assert a.sent[1] is frame and b.sent[1] is frame
    assert c.sent == [b"dsnap"]
    assert fanout.wants("X", TOP_OF_BOOK) and not fanout.wants("Y", TOP_OF_BOOK)


def test_trades_go_once_per_connection_whatever_its_kinds() -> None:
    fanout = Fanout()
    both, top, other = FakeSink(), FakeSink(), FakeSink()
    fanout.subscribe(both, "X", TOP_OF_BOOK, "s", b"s")
    fanout.subscribe(both, "X", PRICE_DEPTH_BOOK, "d", b"d")
    fanout.subscribe(both, "X", TOP_OF_BOOK, "s", b"s again")  # renewed: a fresh snapshot, still one member
    fanout.subscribe(top, "X", TOP_OF_BOOK, "s", b"s")
    fanout.subscribe(other, "Y", TOP_OF_BOOK, "s", b"s")
    fanout.trade("X", b"trade")
    assert both.sent == [b"s", b"d", b"s again", b"trade"]
    assert top.sent == [b"s", b"trade"]
    assert other.sent == [b"s"]


def test_a_backed_up_subscriber_gets_only_the_latest_state_when_it_drains_and_every_trade() -> None:
    fanout = Fanout()
    slow, fast = FakeSink(), FakeSink()
    for sink in (slow, fast):
        fanout.subscribe(sink, "X", TOP_OF_BOOK, 0, b"t0")
        fanout.subscribe(sink, "X", PRICE_DEPTH_BOOK, 0, b"d0")
    slow.writing_paused = True
    for n in range(1, 4):
        fanout.trade("X", b"trade%d" % n)
        fanout.book("X", TOP_OF_BOOK, n, b"t%d" % n)
        fanout.book("X", PRICE_DEPTH_BOOK, n, b"d%d" % n)
    assert fast.sent[2:] == [b"trade1", b"t1", b"d1", b"trade2", b"t2", b"d2", b"trade3", b"t3", b"d3"]
    assert slow.sent[2:] == [b"trade1", b"trade2", b"trade3"]  # trades never wait, books are kept
    slow.writing_paused = False
    fanout.drained(slow)
    assert slow.sent[5:] == [b"t3", b"d3"]
    fanout.drained(slow)  # nothing kept any more
    assert len(slow.sent) == 7


def test_a_state_back_to_what_it_last_got_is_not_sent_on_drain() -> None:
    fanout = Fanout()
    slow = FakeSink()
    fanout.subscribe(slow, "X", TOP_OF_BOOK, "A", b"A")
    slow.writing_paused = True
    fanout.book("X", TOP_OF_BOOK, "B", b"B")
    fanout.book("X", TOP_OF_BOOK, "A", b"A2")  # back to what it shows
    slow.writing_paused = False
    fanout.drained(slow)
    assert slow.sent == [b"A"]


def test_a_snapshot_goes_at_once_even_while_backed_up_and_replaces_a_kept_state() -> None:
    fanout = Fanout()
    slow = FakeSink()
    fanout.subscribe(slow, "X", TOP_OF_BOOK, 1, b"t1")
    slow.writing_paused = True
    fanout.book("X", TOP_OF_BOOK, 2, b"t2")
    fanout.subscribe(slow, "X", TOP_OF_BOOK, 2, b"snap2")
    slow.writing_paused = False
    fanout.drained(slow)
    assert slow.sent == [b"t1", b"snap2"]


def test_removed_and_delisted_subscriptions_get_nothing_more() -> None:
    fanout = Fanout()
    gone, delisted = FakeSink(), FakeSink()
    fanout.subscribe(gone, "X", TOP_OF_BOOK, 0, b"s")
    fanout.subscribe(delisted, "Y", PRICE_DEPTH_BOOK, 0, b"s")
    delisted.writing_paused = True
    fanout.book("Y", PRICE_DEPTH_BOOK, 1, b"d1")
    fanout.remove(gone)
    fanout.drop_symbol("Y")
    fanout.book("X", TOP_OF_BOOK, 1, b"t1")
    fanout.trade("X", b"trade")
    fanout.trade("Y", b"trade")
    delisted.writing_paused = False
    fanout.drained(delisted)
    assert gone.sent == [b"s"] and delisted.sent == [b"s"]
    assert fanout.topics == {}
