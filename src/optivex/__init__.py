"""Optivex: an open exchange on one machine."""
