"""The login replay as a ``net`` stream: a snapshot's books and orders encoded a slice at a time."""

from __future__ import annotations

from collections.abc import Callable

from optivex.engine import BookInfo
from optivex.orderbook.replay import Replay
from optivex.proto import order_book_pb2 as pb
from optivex.units import units_to_price
from optivex.wire import encode_frame


class ReplayStream:
    """A ``net.StreamProducer``: OnOrderBookCreated for every book, then OnOrderInserted for every order.

    Each order carries its remaining quantity at login, its original
    timestamp and no trade_ids (contract section 3).
    """

    __slots__ = ("_encode_book", "replay")

    def __init__(self, replay: Replay, encode_book: Callable[[BookInfo], bytes]) -> None:
        self.replay = replay
        self._encode_book = encode_book

    def produce(self, max_frames: int) -> list[bytes] | None:
        replay = self.replay
        if replay.done:
            return None
        encode_book = self._encode_book
        frames = [encode_book(book) for book in replay.next_books(max_frames)]
        if len(frames) < max_frames and replay.prepare():  # else it grouped a slice of the snapshot
            inserted = pb.OnOrderInserted
            frame_type = pb.ON_ORDER_INSERTED
            frames.extend(
                encode_frame(
                    frame_type,
                    inserted(
                        order_id=o.order_id,
                        order_book_id=o.book_id,
                        timestamp=o.timestamp,
                        side=o.side,  # type: ignore[arg-type]  # stubs want the enum wrapper; ints are fine
                        price=units_to_price(o.price),
                        quantity=remaining,
                        username=o.owner,
                    ).SerializeToString(),
                )
                for o, remaining in replay.next_orders(max_frames - len(frames))
            )
        return frames

    def release(self) -> None:
        self.replay.close()
