"""Convergence-rate simulations of the selectors on two-layer and deep networks."""
