"""Layer 8: one module per `zar` verb, each only wiring."""
