"""What the worker, admin, commands and API share: one module per job."""
