"""Test support: servers started for real on ephemeral ports, and small protocol clients."""
