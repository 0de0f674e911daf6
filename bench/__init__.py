"""Benchmarks: each compares our code with a baseline run side by side."""
