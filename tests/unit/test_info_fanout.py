"""info.fanout: shared frames, trades once per connection, book messages conflated while backed up,
unsubscribe, depth limits (a frame per limit group, only when its best N levels changed)."""

from __future__ import annotations

from optivex.info.fanout import PRICE_DEPTH_BOOK, TOP_OF_BOOK, Fanout, best_levels
from optivex.info.market import Depth


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


def book(bids: list[int], asks: list[int]) -> Depth:
    """A depth with one lot at each price."""
    return Depth(tuple((p, 1) for p in bids), tuple((p, 1) for p in asks))


class Encoder:
    """An encode callback for Fanout.depth that records what it encoded."""

    def __init__(self) -> None:
        self.encoded: list[Depth] = []

    def __call__(self, depth: Depth) -> bytes:
        self.encoded.append(depth)
        return repr(depth).encode()


def frame(depth: Depth) -> bytes:
    return repr(depth).encode()


def subscribe_depth(fanout: Fanout, sink: FakeSink, depth: Depth, limit: int) -> None:
    shown = best_levels(depth, limit)
    fanout.subscribe(sink, "X", PRICE_DEPTH_BOOK, shown, frame(shown), limit)


def test_best_levels() -> None:
    depth = book([10, 9, 8], [11, 12])
    assert best_levels(depth, 0) is depth
    assert best_levels(depth, 3) is depth
    assert best_levels(depth, 2) == book([10, 9], [11, 12])
    assert best_levels(depth, 1) == book([10], [11])


def test_a_limit_group_gets_a_frame_only_when_its_best_levels_changed() -> None:
    fanout = Fanout()
    start = book([10, 9], [11])
    limited, other = FakeSink(), FakeSink()
    subscribe_depth(fanout, limited, start, 2)
    subscribe_depth(fanout, other, start, 2)
    encode = Encoder()
    fanout.depth("X", book([10, 9, 8], [11]), encode)  # below level 2: nothing
    assert encode.encoded == [] and len(limited.sent) == 1
    fanout.depth("X", book([10, 9, 8], [11, 12]), encode)  # level 2 of the asks: shown
    assert encode.encoded == [book([10, 9], [11, 12])]  # encoded once for the group
    assert limited.sent[1] == other.sent[1] == frame(book([10, 9], [11, 12]))
    assert limited.sent[1] is other.sent[1]
    fanout.depth("X", book([10, 9, 8], [11, 12, 13]), encode)
    fanout.depth("X", book([10, 9], [11, 12, 13]), encode)
    assert len(encode.encoded) == 1 and len(limited.sent) == 2
    fanout.depth("X", book([10, 8], [11, 12, 13]), encode)  # level 2 of the bids changed
    assert limited.sent[2:] == [frame(book([10, 8], [11, 12]))]


def test_two_limits_one_change_below_one_of_them() -> None:
    fanout = Fanout()
    start = book([10, 9, 8], [11, 12, 13])
    one, three, every, top = FakeSink(), FakeSink(), FakeSink(), FakeSink()
    subscribe_depth(fanout, one, start, 1)
    subscribe_depth(fanout, three, start, 3)
    subscribe_depth(fanout, every, start, 0)
    fanout.subscribe(top, "X", TOP_OF_BOOK, "top", b"top")
    encode = Encoder()
    changed = book([10, 9, 7], [11, 12, 13])  # level 3 of the bids: below limit 1
    fanout.depth("X", changed, encode)
    assert encode.encoded == [changed, changed]  # once for limit 3, once for every level
    assert one.sent == [frame(book([10], [11]))]
    assert three.sent[1:] == every.sent[1:] == [frame(changed)]
    assert top.sent == [b"top"]  # depth changes never reach a top of book subscription
    deeper = book([10, 9, 7, 6], [11, 12, 13])  # below 3 too
    fanout.depth("X", deeper, encode)
    assert every.sent[2:] == [frame(deeper)] and len(three.sent) == 2 and len(one.sent) == 1
    best = book([9, 7, 6], [11, 12, 13])  # the best bid left
    fanout.depth("X", best, encode)
    assert one.sent[1:] == [frame(book([9], [11]))]
    assert three.sent[2:] == [frame(best_levels(best, 3))]


def test_subscribing_again_with_another_limit_moves_the_subscription() -> None:
    fanout = Fanout()
    start = book([10, 9, 8], [11])
    sink = FakeSink()
    subscribe_depth(fanout, sink, start, 1)
    subscribe_depth(fanout, sink, start, 3)  # replaces the limit: a fresh snapshot
    assert sink.sent == [frame(book([10], [11])), frame(start)]
    assert list(fanout.topics["X"].depth) == [3]  # the limit-1 group went with its last member
    fanout.depth("X", book([10, 9, 7], [11]), Encoder())  # below 1, within 3
    assert sink.sent[2:] == [frame(book([10, 9, 7], [11]))]
    assert fanout.topics["X"].members == {fanout.subscribers[sink]: 1}  # still one subscription
    fanout.trade("X", b"trade")
    assert sink.sent[-1] == b"trade" and sink.sent.count(b"trade") == 1


def test_a_backed_up_limited_subscriber_gets_only_what_its_levels_show_when_it_drains() -> None:
    fanout = Fanout()
    start = book([10, 9], [11])
    slow = FakeSink()
    subscribe_depth(fanout, slow, start, 1)
    slow.writing_paused = True
    fanout.depth("X", book([10, 8], [11]), Encoder())  # below 1: nothing kept
    assert fanout.subscribers[slow].pending == {}
    fanout.depth("X", book([9, 8], [11]), Encoder())
    fanout.depth("X", book([8], [11]), Encoder())
    slow.writing_paused = False
    fanout.drained(slow)
    assert slow.sent == [frame(book([10], [11])), frame(book([8], [11]))]


def test_unsubscribe_removes_the_subscription_and_its_kept_state() -> None:
    fanout = Fanout()
    sink, stays = FakeSink(), FakeSink()
    fanout.subscribe(sink, "X", TOP_OF_BOOK, 0, b"t0")
    fanout.subscribe(sink, "X", PRICE_DEPTH_BOOK, 0, b"d0")
    fanout.subscribe(stays, "X", TOP_OF_BOOK, 0, b"t0")
    sink.writing_paused = True
    fanout.book("X", TOP_OF_BOOK, 1, b"t1")  # kept while backed up
    assert fanout.unsubscribe(sink, "X", TOP_OF_BOOK)
    assert not fanout.unsubscribe(sink, "X", TOP_OF_BOOK)  # no longer held
    assert not fanout.holds(sink, "X", TOP_OF_BOOK) and fanout.holds(sink, "X", PRICE_DEPTH_BOOK)
    sink.writing_paused = False
    fanout.drained(sink)
    fanout.book("X", TOP_OF_BOOK, 2, b"t2")
    fanout.trade("X", b"trade")  # it still holds the depth: its trades go on
    assert sink.sent == [b"t0", b"d0", b"trade"]
    assert stays.sent == [b"t0", b"t1", b"t2", b"trade"]
    assert fanout.wants("X", TOP_OF_BOOK)


def test_unsubscribing_the_last_kind_on_a_symbol_stops_its_trades() -> None:
    fanout = Fanout()
    sink, other = FakeSink(), FakeSink()
    fanout.subscribe(sink, "X", TOP_OF_BOOK, 0, b"t0")
    subscribe_depth(fanout, sink, book([10, 9], []), 1)
    fanout.subscribe(sink, "Y", TOP_OF_BOOK, 0, b"y0")
    fanout.subscribe(other, "Y", TOP_OF_BOOK, 0, b"y0")
    assert fanout.unsubscribe(sink, "X", PRICE_DEPTH_BOOK)
    fanout.trade("X", b"x trade 1")  # TOP_OF_BOOK still held
    assert fanout.unsubscribe(sink, "X", TOP_OF_BOOK)
    fanout.trade("X", b"x trade 2")
    fanout.depth("X", book([11], []), Encoder())
    fanout.trade("Y", b"y trade")
    assert sink.sent[2:] == [b"y0", b"x trade 1", b"y trade"]
    assert "X" not in fanout.topics and not fanout.wants("X", PRICE_DEPTH_BOOK)
    assert not fanout.unsubscribe(sink, "Z", TOP_OF_BOOK)  # never held, unknown symbol
    assert not fanout.unsubscribe(FakeSink(), "Y", TOP_OF_BOOK)  # a connection with no subscription
    assert fanout.unsubscribe(sink, "Y", TOP_OF_BOOK)
    assert sink not in fanout.subscribers  # nothing left of it
    assert fanout.unsubscribe(other, "Y", TOP_OF_BOOK) and fanout.topics == {} and not fanout.subscribers


def test_removing_a_connection_cleans_every_group() -> None:
    fanout = Fanout()
    gone, stays = FakeSink(), FakeSink()
    start = book([10, 9, 8], [11, 12])
    for limit in (1, 2):
        subscribe_depth(fanout, stays, start, limit)  # 2 replaces 1
    subscribe_depth(fanout, gone, start, 1)
    fanout.subscribe(gone, "X", TOP_OF_BOOK, 0, b"t")
    fanout.subscribe(gone, "Y", PRICE_DEPTH_BOOK, start, b"y")
    gone.writing_paused = True
    fanout.depth("X", book([9], [11]), Encoder())
    fanout.remove(gone)
    topic = fanout.topics["X"]
    assert list(topic.depth) == [2] and topic.top is None
    assert list(topic.members) == [fanout.subscribers[stays]]
    assert "Y" not in fanout.topics and gone not in fanout.subscribers
    gone.writing_paused = False
    fanout.drained(gone)
    fanout.trade("X", b"trade")
    assert b"trade" not in gone.sent
    assert stays.sent[-1] == b"trade"
