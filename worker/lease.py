"""A lease on a running arq job, so a dead worker's task is taken over within ``lease_s``.

arq marks a running job with its in-progress key (``arq:in-progress:<job_id>``) and starts
a queued job only when that key is absent; the job stays in the queue until a run of it
finishes, so when a worker is SIGKILLed its job is re-run once the key expires. arq itself
would set the key for the whole job timeout (minutes); our worker
(:class:`~agentstream.worker.settings.ResilientWorker`) sets it for ``lease_s`` when it
takes the job, and :class:`Lease` takes the key over as the job starts and renews it every
``lease_s / 3`` while the job runs: a killed worker stops renewing, the key expires within
``lease_s`` whenever the kill came, and the next queue poll of any live worker starts the
job again (a new attempt, fenced and resumed from the stored events).

The key holds the lease owner. A renewal finding another owner's value means the lease was
lost (this worker stalled for longer than ``lease_s`` and another one took over): the
``lost`` event is set, and the runner stops, its writer being fenced anyway. A renewal
finding no key re-creates it: arq deletes the key when *any* run of the job ends, including
the run of a stale owner that was fenced off, and the live owner must not lose its lease
to that.

The lease's owner and expiry are also copied to the task's meta hash (``lease_owner``,
``lease_until`` in epoch milliseconds on the Redis clock) for operators to see who runs a
task, and for a cancel to tell a task some worker holds (that worker ends it) from one
nobody holds (the cancel ends it at once: :meth:`TaskStore.request_cancel`). The copy is
written only while the task exists and is not done, so it can neither resurrect an
expired task nor outlive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

from arq.constants import in_progress_key_prefix

from agentstream.streams.connection import RedisClient
from agentstream.streams.errors import REDIS_FAILURES
from agentstream.worker.errors import ConfigurationError

__all__ = ["Lease"]

logger = logging.getLogger(__name__)

#: what a lease operation may fail with: Redis refusing or unreachable, or our own timeout

# KEYS: in-progress key; ARGV: owner, lease_ms -> 1 held, 0 lost to another owner
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS: meta; ARGV: owner, lease_ms. Only a live, unfinished task is written. The expiry
# is on Redis's clock (epoch ms), the clock the cancel script compares it with.
_RECORD = """
if redis.call('HGET', KEYS[1], 'done') ~= '0' then return 0 end
local now = redis.call('TIME')
local until_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'lease_owner', ARGV[1], 'lease_until', string.format('%d', until_ms))
return 1
"""

# KEYS: meta; ARGV: owner. Clears the copy if it is still ours.
_CLEAR = """
if redis.call('HGET', KEYS[1], 'lease_owner') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'lease_owner', 'lease_until')
return 1
"""


class _State(enum.Enum):
    NEW = "new"
    HELD = "held"
    RELEASED = "released"


class Lease:
    """Holds the in-progress key of arq job ``job_id`` for as long as the block runs.

    ``async with Lease(redis, job_id, lease_s, owner, meta_key=...) as lease:`` takes the
    key at once (overwriting arq's placeholder), renews it in a task of its own, and on exit
    stops renewing; arq deletes the key when the job returns. ``lease.lost`` is set if
    another owner took the key over.
    """

    def __init__(
        self,
        redis: RedisClient,
        job_id: str,
        lease_s: float,
        owner: str,
        *,
        meta_key: str | None = None,
        meta_redis: RedisClient | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ConfigurationError(f"lease_s must be positive, got {lease_s}")
        self.key = in_progress_key_prefix + job_id
        self.lease_s = lease_s
        self.owner = owner
        self.lost = asyncio.Event()
        self._redis = redis
        self._meta_key = meta_key
        # The lease lives where arq's queue is; the meta copy where the task's streams
        # are (another Redis, e.g. a Cluster, when ``AGENTSTREAM_QUEUE_URL`` is set).
        meta_redis = redis if meta_redis is None else meta_redis
        self._renew = redis.register_script(_RENEW)
        self._record = meta_redis.register_script(_RECORD)
        self._clear = meta_redis.register_script(_CLEAR)
        self._renewer: asyncio.Task[None] | None = None
        self._state = _State.NEW

    @property
    def interval_s(self) -> float:
        """Time between renewals: a third of the lease, so two may fail before it lapses."""
        return self.lease_s / 3

    async def __aenter__(self) -> Lease:
        if self._state is not _State.NEW:
            raise ConfigurationError(f"lease on {self.key!r} is {self._state.value}; create a new Lease")
        async with asyncio.timeout(self.interval_s):
            await self._redis.set(self.key, self.owner, px=self._lease_ms())
            await self._record_meta()
        self._state = _State.HELD
        self._renewer = asyncio.get_running_loop().create_task(
            self._renew_forever(), name=f"agentstream-lease-{self.key}"
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._state = _State.RELEASED
        if self._renewer is not None:
            self._renewer.cancel()
            # Wait for it without letting its cancellation look like ours.
            await asyncio.wait([self._renewer])
            self._renewer = None
        if self._meta_key is not None:
            # The meta copy is informational: failing to clear it must not fail the job.
            with contextlib.suppress(*REDIS_FAILURES):
                async with asyncio.timeout(self.interval_s):
                    await self._clear(keys=[self._meta_key], args=[self.owner])

    def _lease_ms(self) -> int:
        return max(1, int(self.lease_s * 1000))

    async def renew(self) -> bool:
        """Extend the lease once; ``False`` (and ``lost`` set) if another owner holds it."""
        async with asyncio.timeout(self.interval_s):
            held = bool(await self._renew(keys=[self.key], args=[self.owner, self._lease_ms()]))
            if held:
                await self._record_meta()
        if not held:
            logger.warning("lease on %s was taken over by another worker", self.key)
            self.lost.set()
        return held

    async def _record_meta(self) -> None:
        if self._meta_key is None:
            return
        await self._record(keys=[self._meta_key], args=[self.owner, self._lease_ms()])

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                if not await self.renew():
                    return
            except REDIS_FAILURES as exc:
                # Keep trying: the lease survives two missed renewals, and if it does lapse,
                # fencing keeps the next attempt safe from this one.
                logger.warning("could not renew the lease on %s: %r", self.key, exc)
