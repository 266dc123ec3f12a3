"""The driver's reading of the errors Ray raises for a pack (``dd.run.execute.worker_death``):
a lost node, a dead worker process, or the pack's own error. The errors are built as Ray
builds them, without a Ray instance."""

from __future__ import annotations

from ray import exceptions as rx
from ray.core.generated.common_pb2 import ActorDiedErrorContext

from dd.run.execute import NODE_LOST, WORKER_DIED, worker_death


def _died(message: str) -> rx.ActorDiedError:
    return rx.ActorDiedError(
        ActorDiedErrorContext(error_message=message, class_name="PackWorker", actor_id=b"\0" * 16)
    )


def test_an_actor_whose_node_died_is_a_lost_node():
    error = _died("The actor died because its node has died. Node Id: 5928")
    assert worker_death(error) == NODE_LOST


def test_an_actor_that_cannot_be_reached_and_a_dead_node_are_a_lost_node():
    assert worker_death(rx.ActorUnavailableError("connection lost", None)) == NODE_LOST
    assert worker_death(rx.NodeDiedError("node gone")) == NODE_LOST


def test_an_actor_whose_process_died_on_a_live_node_is_a_dead_worker():
    error = _died("The actor is dead because its worker process has died. Worker exit type")
    assert worker_death(error) == WORKER_DIED
    assert worker_death(rx.WorkerCrashedError()) == WORKER_DIED


def test_the_packs_own_error_and_a_worker_that_could_not_start_are_no_death():
    raised = rx.RayTaskError("run", "Traceback ...", ValueError("bad spec"))
    assert worker_death(raised) is None
    assert worker_death(ValueError("bad spec")) is None
    assert worker_death(rx.ActorDiedError(raised)) is None, "its start raised: every pack would"
