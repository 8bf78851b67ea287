"""The example bots: a market maker, a random taker (asyncio) and an arbitrage between two instruments.

Shipped in the package, so that `optivex demo` runs them from a wheel install too; each runs as
`python -m optivex.examples.<name>` (or by its path) with `--help`.
"""
