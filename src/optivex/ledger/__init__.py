"""Day positions per user and symbol, kept from fills in exact integers (pure; see positions.py)."""

from optivex.ledger.positions import BUY, SELL, Ledger, PositionFigures

__all__ = ["BUY", "SELL", "Ledger", "PositionFigures"]
