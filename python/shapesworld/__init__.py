"""The shapes world: a miniature text-to-image world whose models use the real formats."""
