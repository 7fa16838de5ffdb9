"""Layer 7: `zar bench`: speed figures, printed."""
