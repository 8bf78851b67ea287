"""The sample component: the smallest service on the Optivex framework."""

from optivex.app.launch import launch


def main() -> None:
    """The console script: listens at once, then imports the component (optivex.app.launch)."""
    launch("sample-app", "optivex.sample.component:SampleApp", __doc__)
