"""The built-in protocol plugins. Each is registered under the entry-point group
``stalwart_py.protocols`` exactly as a third-party plugin would be, and imports only
stalwart_py's public API (plugin, store, directory, delivery), never another protocol."""
