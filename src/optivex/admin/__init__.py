"""The admin component: creating instruments and their order books."""
