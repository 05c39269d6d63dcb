"""The same actors on a bare dramatiq RedisBroker: no Django, dramatiq's default middleware only.

Run by the benchmark as ``dramatiq bench.bare_actors``; BENCH_REDIS_URL and BENCH_NAMESPACE say
where (the namespace gets a ``-bare`` suffix, so its keys never mix with the full stack's).
"""

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker

NAMESPACE = f"{os.environ['BENCH_NAMESPACE']}-bare"
broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"], namespace=NAMESPACE)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def noop(counter_key: str) -> None:
    broker.client.incr(counter_key)


@dramatiq.actor(queue_name="bench", max_retries=0)
def stamp(key: str) -> None:
    started = time.time()
    broker.client.rpush(key, repr(started))
