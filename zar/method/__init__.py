"""Layer 2: the paper's method, readable in one folder."""
