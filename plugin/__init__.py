"""KOM: Klarna/Kustom Order Management for shop platforms."""

__version__ = "0.1.0"
