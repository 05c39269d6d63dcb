"""dramatiq middleware of the task layer, one per module as in dramatiq's own package."""
