"""Pack workers kept warm between the sweeps of one driver process.

A worker (``dd.run.worker.PackWorker``, a Ray actor) keeps its imports, its datasets and its
compiled programs. A notebook's second ``dd.api.sweep`` of the same shapes takes the workers
the first one left here, so it neither starts processes nor compiles. Workers are
interchangeable when they share a ``WorkerKind``: what Ray reserves for them, their
environment, compile cache and data locations, and how many packs each runs at once.

Only workers that ended their run well come back (``give_back``): one whose pack failed, that
stalled, or whose run was cancelled or raised is killed instead. The pool belongs to one Ray
instance: after ``ray.shutdown`` or a connection elsewhere its workers are gone with the old
instance, and it forgets them. Idle workers hold their reservation (a GPU, say) until another
kind is asked for, ``release`` is called (``dd.api.release_workers``) or Ray shuts down.

On the warm instance of ``dd up`` (``dd.run.warm``) the workers are detached actors and the idle
ones wait in the instance's registry instead, for the next command's sweeps as well.
"""

from __future__ import annotations

import dataclasses
import threading

from dd.datasets.base import Locations
from dd.plan.sweep import Resources
from dd.run import warm
from dd.run.worker import PackWorker, worker_env
from dd.spec.settings import Settings


@dataclasses.dataclass(frozen=True)
class WorkerKind:
    """What makes two pack workers interchangeable."""

    cpus: float
    gpus: float
    memory_gb: float
    env: tuple[tuple[str, str], ...]
    packs_in_flight: int
    compile_cache: str | None
    locations: Locations
    cost_tables: str | None = None

    @classmethod
    def of(cls, resources: Resources, settings: Settings) -> WorkerKind:
        """The workers a run with ``resources`` and the driver's ``settings`` asks for."""
        return cls(
            cpus=resources.cpus,
            gpus=resources.gpus,
            memory_gb=resources.memory_gb,
            env=tuple(sorted(worker_env(resources).items())),
            packs_in_flight=resources.packs_per_worker(),
            compile_cache=settings.compile_cache,
            locations=Locations(data_dir=settings.data_dir, cache_dir=settings.cache_dir),
            cost_tables=settings.cost_tables,
        )

    def start(self):
        """A fresh worker of this kind (its process starts in the background); on the warm
        instance a detached actor, which outlives the command."""
        import ray

        options = {
            "num_cpus": self.cpus,
            "num_gpus": self.gpus,
            "memory": int(self.memory_gb * 2**30),
            "max_restarts": 0,  # the driver replaces a dead worker (dd.run.policy.Dispatch.lost)
            "max_task_retries": 0,
        }
        if self.packs_in_flight > 1:  # a threaded actor: its packs share one process
            options["max_concurrency"] = self.packs_in_flight
        if self.env:
            options["runtime_env"] = {"env_vars": dict(self.env)}
        if warm.on_warm_instance():
            options |= {"lifetime": "detached", "namespace": warm.NAMESPACE}
        actor = ray.remote(PackWorker).options(**options)
        return actor.remote(self.compile_cache, self.gpus == 0, self.locations, self.cost_tables)


def _instance() -> tuple | None:
    """This process's Ray instance (None when Ray is down): its GCS, its session and the
    driver's job, which a fresh instance or another cluster does not share."""
    import ray

    if not ray.is_initialized():
        return None
    context = ray.get_runtime_context()
    return (context.gcs_address, context.get_session_name(), context.get_job_id())


class WorkerPool:
    """Idle warm workers by kind, for the current Ray instance (thread-safe: background
    sweeps of one process share it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._idle: dict[WorkerKind, list] = {}
        self._instance: tuple | None = None

    def take(self, kind: WorkerKind, n: int) -> list:
        """``n`` workers of ``kind``: warm ones first, then fresh ones. Idle workers of other
        kinds, and warm ones beyond ``n``, are killed so that their reservations free up."""
        import ray

        if (registry := warm.registry()) is not None:
            kept = ray.get(registry.take.remote(repr(kind), n))
            return kept + [kind.start() for _ in range(n - len(kept))]
        with self._lock:
            self._forget_other_instance()
            idle = self._idle.pop(kind, [])
            for other in [w for ws in self._idle.values() for w in ws] + idle[n:]:
                ray.kill(other)
            self._idle.clear()
        return idle[:n] + [kind.start() for _ in range(n - len(idle[:n]))]

    def give_back(self, kind: WorkerKind, workers: list) -> None:
        """Keep ``workers`` (which ended their run well) for the next sweep of ``kind``."""
        if (registry := warm.registry()) is not None:
            import ray

            try:
                ray.get(registry.give_back.remote(repr(kind), workers))
            except Exception:  # the instance went during the run: its workers went with it
                pass
            return
        with self._lock:
            self._forget_other_instance()
            self._idle.setdefault(kind, []).extend(workers)

    def prestart(self, kind: WorkerKind) -> None:
        """Start one worker of ``kind`` now, unless one waits here, so that the first pack
        of the run being planned finds it started."""
        if (registry := warm.registry()) is not None:
            import ray

            if not ray.get(registry.has.remote(repr(kind))):
                self.give_back(kind, [kind.start()])
            return
        with self._lock:
            self._forget_other_instance()
            if self._idle.get(kind):
                return
        self.give_back(kind, [kind.start()])

    def idle(self) -> int:
        """How many workers wait here (for this Ray instance)."""
        if (registry := warm.registry()) is not None:
            import ray

            return ray.get(registry.count.remote())
        with self._lock:
            self._forget_other_instance()
            return sum(len(ws) for ws in self._idle.values())

    def release(self) -> None:
        """Kill every idle worker."""
        import ray

        if (registry := warm.registry()) is not None:
            ray.get(registry.release.remote())
        with self._lock:
            if self._instance is not None and self._instance == _instance():
                for worker in [w for ws in self._idle.values() for w in ws]:
                    ray.kill(worker)
            self._idle.clear()

    def _forget_other_instance(self) -> None:
        current = _instance()
        if current != self._instance:
            self._idle.clear()  # those workers went with their instance
            self._instance = current


POOL = WorkerPool()
