"""The line client lives in the plugin test kit (stalwart_py.testing); imported here for the
tests written before it."""

from stalwart_py.testing.clients import TIMEOUT, LineClient, connect

__all__ = ["TIMEOUT", "LineClient", "connect"]
