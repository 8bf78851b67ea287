"""The admin component: creating instruments and their order books."""

from optivex.app.launch import launch


def main() -> None:
    """The console script: listens at once, then imports the component (optivex.app.launch)."""
    launch("admin", "optivex.admin.component:AdminComponent", __doc__)
