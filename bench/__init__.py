"""The benches: each runs standalone (python bench/NAME.py) and prints its figures."""
