"""The reindex workflow runs on the workflows layer's test Temporal server and worker."""

from tests.workflows.conftest import module_temporal_worker, start_temporal_worker, temporal, temporal_server

__all__ = ["module_temporal_worker", "start_temporal_worker", "temporal", "temporal_server"]
