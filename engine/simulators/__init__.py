"""Faithful local simulators of the seed services, with fault injection."""
