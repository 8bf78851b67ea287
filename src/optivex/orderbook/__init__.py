"""The order-book component: every book of the day, the only place orders match."""
