"""Use cases: sync one order between the platform and the payment provider."""
