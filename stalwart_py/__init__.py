"""stalwart-py: a personal multi-protocol mail server with a listener registry."""

__version__ = "0.1.0"
