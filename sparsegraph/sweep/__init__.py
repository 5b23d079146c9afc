"""Sweeps over schemes, densities and seeds, their plots and the HTML report."""
