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

``probe`` runs when the spec is loaded (``Trial.check``): it imports the module, builds it,
and traces (``jax.eval_shape``: no numbers computed) one pack step as the engine takes it:
two replicas vmapped, gradient of their summed losses, BatchNorm statistics updated, and one
evaluation, so anything the module cannot do in dd's training is one line naming the module and why.
The same trace gives the parameter count (from the initialised parameters), a per-example
activation size for the first cut of packs, and whether the forward pass holds a
convolution (``Family.convolutional``). Results are cached per (module, width, options,
input shape, outputs, precision): a grid over seeds, n_train or learning rates traces once.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import re
from typing import Any

from dd.config import FlaxModel, Trial, check_import_path
from dd.errors import SpecError
from dd.families import Family, n_outputs, token_vocab
from dd.precision import compute_dtype

KEPT_COLLECTIONS = ("params", "batch_stats")
PROBE_BATCH = 2  # examples per replica in the check's trace
PROBE_REPLICAS = 2


def resolve(import_path: str, field: str) -> Any:
    """The object at "package.module:name" (``name`` may be dotted); a SpecError on ``field``
    naming the import path and the reason when it cannot be had."""
    check_import_path(field, import_path)
    module_name, _, attr = import_path.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or the user's module failing at import
        raise SpecError(
            field, f"{import_path}: cannot import {module_name} ({_one_line(e)})"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(field, f"{import_path}: {module_name} has no {attr!r}") from None
    if not callable(obj):
        raise SpecError(
            field,
            f"{import_path}: {attr} is a {type(obj).__name__}, not a Module class or a function",
        )
    return obj


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


@dataclasses.dataclass(frozen=True)
class Probe:
    """What the trace of one pack step found."""

    n_params: int
    activation_floats: int
    convolutional: bool


def _key(trial: Trial) -> tuple:
    """Everything the module's program depends on, and nothing that travels as an array."""
    integer = getattr(trial.data, "integer_inputs", False) or bool(token_vocab(trial))
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
    import flax.linen as nn

    target = resolve(model.module, "model.module")
    kwargs = {"width": model.width, "n_outputs": outputs, **model.options.as_kwargs()}
    if _accepts(target, "dtype"):
        kwargs["dtype"] = dtype
    module = target(**kwargs)
    if not isinstance(module, nn.Module):
        raise TypeError(f"it returned a {type(module).__name__}, not a flax.linen Module")
    return module if _takes_train(module) else _with_train_argument(module)


def _with_train_argument(module: Any) -> Any:
    import flax.linen as nn

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
    """The trace of one pack step of the module at ``key``: a Probe, or why it fails."""
    import jax
    import jax.numpy as jnp

    from dd.step import apply_model

    model, input_shape, x_dtype, outputs, precision = key
    try:
        module = _construct(model, outputs, compute_dtype(precision))
    except SpecError as e:
        return e.message.removeprefix(f"{model.module}: ")
    except Exception as e:
        return (
            f"building it with width={model.width}, n_outputs={outputs} and its options "
            f"raised {_one_line(e)}"
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
    return f"it cannot train in dd: {_one_line(error)}"


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


FAMILY = Family(
    name="flax",
    build=_build,
    count=lambda trial: probe(trial).n_params,
    activation_floats=lambda trial: probe(trial).activation_floats,
    convolutional=lambda trial: probe(trial).convolutional,
)
