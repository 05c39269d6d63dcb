"""Durable workflows on Temporal beside dramatiq (optional; inert unless ``TEMPORAL_CONFIG.enabled``).

Kept empty: Temporal's workflow sandbox re-imports this package with every workflow module.
"""
