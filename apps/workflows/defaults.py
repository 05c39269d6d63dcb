"""Defaults shared by the settings (``config``), workflow code and activities: no imports, so the
settings load without the ``workflows`` extra (temporalio) and workflow sandboxes import it freely."""

#: The heartbeat time-out (seconds) of this project's activities (``TEMPORAL_CONFIG.heartbeat_timeout``):
#: how long a dead worker stalls a running activity before another worker runs it again.
DEFAULT_HEARTBEAT_TIMEOUT = 5.0
