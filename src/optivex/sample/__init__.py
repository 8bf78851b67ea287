"""The sample component: the smallest service on the Optivex framework."""
