"""Tables, preference matrices and plots from result rows (pandas/numpy/matplotlib; never torch)."""
