"""Channel adapters: one module per provider behind the protocol in ``base``."""
