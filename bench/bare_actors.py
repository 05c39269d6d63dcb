"""The same no-op actor on a bare dramatiq RedisBroker: no Django, default middleware only.

Run by the benchmark as ``dramatiq bench.bare_actors``; BENCH_REDIS_URL and BENCH_NAMESPACE say where.
"""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace=os.environ["BENCH_NAMESPACE"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(counter_key: str) -> None:
    broker.client.incr(counter_key)
