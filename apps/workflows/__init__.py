"""Durable workflows on Temporal beside dramatiq (optional; inert unless ``TASK_CONFIG.temporal.enabled``).

Kept empty: Temporal's workflow sandbox re-imports this package with every workflow module.
"""
