"""Layer 5: the paper's tables (declarations, numbers, rendering), analysis, figures."""
