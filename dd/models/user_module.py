"""A user's own Flax module as a model family: ``model: {name: flax, module: "pkg.mod:Net"}``.

The object at ``module`` is a ``flax.linen.Module`` class or a function returning a Module.
dd builds it with keywords::

    Net(width=<model.width>, n_outputs=<classes, or 1 for regression>, **<model.options>,
        dtype=<compute dtype>)    # dtype only where the class or function takes one

and calls ``module(x, train=...)`` as the engine calls its own families (``x``: a batch of
examples, float32, or int32 for integer inputs; the output must be ``(batch, n_outputs)``
logits). A module whose ``__call__`` takes no ``train`` is wrapped so that it does, its
variables unchanged. Variables may be ``params`` and ``batch_stats`` (BatchNorm), no others,
and dd gives a module no random stream besides the ``params`` key of ``init``.

``probe`` is the kind's check, run by the resolve stage (``dd.plan.resolve``) when a spec is
loaded for running, never when one is only read (``dd status``, ``dd curves``): it imports
the module, builds it, and traces (``jax.eval_shape``: no numbers computed) one pack step
as the engine takes it: two replicas vmapped, gradient of their summed losses, BatchNorm
statistics updated, and one evaluation, so anything the module cannot do in dd's training is
one line naming the module and why.
The same trace gives the parameter count (from the initialised parameters), a per-example
activation size for the first cut of packs, and whether the forward pass holds a
convolution (``Family.convolutional``). Results are cached per (module, width, options,
input shape, outputs, precision): a grid over seeds, n_train or learning rates traces once.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dd.models.base import Family, NetworkModel, apply_model, n_outputs
from dd.models.precision import compute_dtype, x64
from dd.spec.config import Trial
from dd.spec.errors import SpecError
from dd.spec.fields import NO_OPTIONS, Options, join
from dd.spec.user_code import check_import_path, import_object, one_line

KEPT_COLLECTIONS = ("params", "batch_stats")
PROBE_BATCH = 2  # examples per replica in the check's trace
PROBE_REPLICAS = 2


@dataclass(frozen=True, kw_only=True)
class FlaxModel(NetworkModel):
    """A user's own ``flax.linen`` module (this module): ``module`` is
    "package.module:Name", a Module class or a function returning a Module, built with
    ``width``, ``n_outputs`` (classes, or 1 for regression), the ``options`` as keywords, and
    ``dtype`` where it takes one. It is imported and test-run by the resolve stage
    (``check``), never when a spec is only read."""

    name: str = "flax"
    module: str
    options: Options = NO_OPTIONS

    def check(self, path: str) -> None:
        check_import_path(join(path, "module"), self.module)
        reserved = sorted(set(json.loads(self.options)) & {"width", "n_outputs", "dtype"})
        if reserved:
            raise SpecError(
                join(path, f"options.{reserved[0]}"),
                "dd passes width, n_outputs and dtype itself; set model.width, not an option",
            )


@dataclasses.dataclass(frozen=True)
class Probe:
    """What the trace of one pack step found."""

    n_params: int
    activation_floats: int
    convolutional: bool


def _key(trial: Trial) -> tuple:
    """Everything the module's program depends on, and nothing that travels as an array."""
    integer = trial.data.integer_inputs
    return (
        trial.model,
        trial.data.input_shape,
        "int32" if integer else "float32",
        n_outputs(trial),
        trial.train.precision,
    )


def _accepts(target: Any, name: str) -> bool:
    """Whether a Module class (its fields) or a function (its signature) takes ``name``."""
    if inspect.isclass(target) and dataclasses.is_dataclass(target):
        return name in {f.name for f in dataclasses.fields(target)}
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in parameters)


def _takes_train(module: Any) -> bool:
    try:
        parameters = inspect.signature(type(module).__call__).parameters
    except (TypeError, ValueError):
        return False
    return "train" in parameters


def _construct(model: FlaxModel, outputs: int, dtype: Any) -> Any:
    """The user's module, built and given the engine's ``__call__(x, train)``."""
    target = import_object(model.module, "model.module")
    if _is_nnx(target):
        raise SpecError(
            "model.module",
            f"{model.module}: {target.__name__} is a flax.nnx Module; dd takes flax.linen "
            "Modules (see docs/plugins.md)",
        )
    kwargs = {"width": model.width, "n_outputs": outputs, **model.options.as_kwargs()}
    if _accepts(target, "dtype"):
        kwargs["dtype"] = dtype
    module = target(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(f"it returned a {type(module).__name__}, not a flax.linen Module")
    return module if _takes_train(module) else _with_train_argument(module)


def _is_nnx(target: Any) -> bool:
    """Whether ``target`` is a ``flax.nnx`` Module class (built differently: not dd's door)."""
    from flax import nnx  # loads only when a user module is checked; the engine uses linen

    return inspect.isclass(target) and issubclass(target, nnx.Module)


def _with_train_argument(module: Any) -> Any:
    class WithTrainArgument(nn.Module):
        """The user's module, whose ``__call__`` takes no ``train``, in a shared scope (its
        variables keep their own names)."""

        inner: nn.Module

        def setup(self) -> None:
            nn.share_scope(self, self.inner)

        def __call__(self, x, train: bool = False):
            return self.inner(x)

    return WithTrainArgument(module)


def _build(trial: Trial, dtype: Any) -> Any:
    return _construct(trial.model, n_outputs(trial), dtype)


@functools.cache
def _probe(key: tuple) -> Probe | str:
    """The trace of one pack step of the module at ``key``: a Probe, or why it fails (traced
    in the precision's x64 scope, as the engine will run it)."""
    with x64(key[-1]):
        return _probe_in_scope(key)


def _probe_in_scope(key: tuple) -> Probe | str:
    model, input_shape, x_dtype, outputs, precision = key
    try:
        module = _construct(model, outputs, compute_dtype(precision))
    except SpecError as e:
        return e.message.removeprefix(f"{model.module}: ")
    except Exception as e:
        return (
            f"building it with width={model.width}, n_outputs={outputs} and its options "
            f"raised {one_line(e)}"
        )
    x_RBD = jax.ShapeDtypeStruct((PROBE_REPLICAS, PROBE_BATCH) + input_shape, jnp.dtype(x_dtype))
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), PROBE_REPLICAS))
    try:
        variables = jax.eval_shape(
            jax.vmap(lambda k, x: module.init(k, x, train=False)), keys, x_RBD
        )
        extra = sorted(set(variables) - set(KEPT_COLLECTIONS))
        if extra:
            return (
                f"it keeps variables in {extra[0]!r}; dd keeps only "
                f"{' and '.join(KEPT_COLLECTIONS)} between steps"
            )
        if not jax.tree.leaves(variables.get("params", {})):
            return "it has no parameters to train"

        def step(variables, x_RBD):
            stats = variables.get("batch_stats", {})

            def pack_loss(params_R):
                logits_RBK, stats_R = jax.vmap(lambda p, s, x: apply_model(module, p, s, x, True))(
                    params_R, stats, x_RBD
                )
                return jnp.sum(logits_RBK**2), (logits_RBK, stats_R)

            _, (logits, _) = jax.grad(pack_loss, has_aux=True)(variables["params"])
            evaluated = jax.vmap(lambda p, s, x: apply_model(module, p, s, x, False)[0])(
                variables["params"], stats, x_RBD
            )
            return logits, evaluated

        trained, evaluated = jax.eval_shape(step, variables, x_RBD)
    except Exception as e:
        return _trace_failure(e)
    want = (PROBE_REPLICAS, PROBE_BATCH, outputs)
    for what, out in (("training", trained), ("evaluation", evaluated)):
        if out.shape != want:
            return (
                f"in {what} it returns shape {out.shape[1:]} for a batch of {PROBE_BATCH} "
                f"examples; dd needs (batch, n_outputs) = {want[1:]}"
            )
    params = variables["params"]
    n_params = sum(math.prod(leaf.shape[1:]) for leaf in jax.tree.leaves(params))
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), variables)
    x_1D = jax.ShapeDtypeStruct((1,) + input_shape, jnp.dtype(x_dtype))
    jaxpr = jax.make_jaxpr(lambda v, x: module.apply(v, x, train=False))(one, x_1D)
    floats, conv = _walk(jaxpr.jaxpr)
    return Probe(n_params=n_params, activation_floats=max(floats, 1), convolutional=conv)


def _trace_failure(error: BaseException) -> str:
    """A reason for a failed trace; a missing random stream gets its own advice."""
    text = str(error)
    stream = re.search(r'PRNG (?:key )?for "?(\w+)"?', text)  # flax's InvalidRngError
    if type(error).__name__ == "InvalidRngError" or stream:
        name = stream.group(1) if stream else "?"
        return (
            f"it needs the random stream {name!r}, which dd does not provide (the engine "
            "passes only the 'params' key to init and no stream in training: make the "
            "layer deterministic, e.g. nn.Dropout(deterministic=True))"
        )
    return f"it cannot train in dd: {one_line(error)}"


def _walk(jaxpr: Any) -> tuple[int, bool]:
    """(floats produced per example, any convolution) over a jaxpr and its sub-jaxprs."""
    floats, conv = 0, False
    for eqn in jaxpr.eqns:
        subs = [
            v
            for p in eqn.params.values()
            for v in (p if isinstance(p, (tuple, list)) else (p,))
            if hasattr(v, "eqns") or hasattr(getattr(v, "jaxpr", None), "eqns")
        ]
        if eqn.primitive.name.startswith("conv_general_dilated"):
            conv = True
        if subs:
            for sub in subs:
                inner_floats, inner_conv = _walk(sub if hasattr(sub, "eqns") else sub.jaxpr)
                floats, conv = floats + inner_floats, conv or inner_conv
        else:
            floats += sum(math.prod(getattr(v.aval, "shape", ())) for v in eqn.outvars)
    return floats, conv


def probe(trial: Trial, path: str = "model.module") -> Probe:
    """The trial's module traced (cached). A module that cannot train in dd is a SpecError
    on ``path``: one line naming the module and the reason."""
    found = _probe(_key(trial))
    if isinstance(found, str):
        raise SpecError(path, f"{trial.model.module}: {found}")
    return found


def check(trial: Trial, path: str) -> None:
    """The resolve stage's check: the module imported, built and one pack step traced."""
    probe(trial, join(path, "model.module"))


class TinyNet(nn.Module):
    """A module as a user writes one, for trying the kind (its ``tiny`` case): one hidden
    Dense + ReLU layer of ``width`` units."""

    width: int
    n_outputs: int

    @nn.compact
    def __call__(self, x: Any, train: bool = False) -> Any:
        h = nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.n_outputs)(h)


KIND = Family(
    config=FlaxModel,
    build=_build,
    count=lambda trial: probe(trial).n_params,
    activation_floats=lambda trial: probe(trial).activation_floats,
    convolutional=lambda trial: probe(trial).convolutional,
    check=check,
    tiny=lambda: {"name": "flax", "module": "dd.models.user_module:TinyNet", "width": 4},
)
