"""Keras 3 models: the functional ``Model(inputs, outputs)``, ``Sequential``, and their training loop.

A model is a graph of layer calls (nodes) run in topological order forward and in reverse order backward;
a tensor read by several nodes gets the sum of their gradients. The model converts its inputs once at its
edge (uint8 and other integer arrays to float32, channels-last images to fastconv's (N, C, H, W)), and
its outputs back to Keras' layout. ``compile`` / ``fit`` / ``evaluate`` / ``predict`` / ``train_on_batch``
/ ``test_on_batch`` follow Keras 3's signatures, defaults, logs and progress output; the loss is fused with
the model's output activation (see ``fastconv.keras.losses``) and the optimizer runs fastconv's fused update
kernels (``fastconv.keras.optimizers``).
"""

from __future__ import annotations

import json
import math
import shutil
import textwrap

import numpy as np

from .. import ops
from . import backend
from . import callbacks as _callbacks
from . import distribution as _distribution
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from .layers import (
    Activation,
    Dense,
    InputLayer,
    KerasTensor,
    Layer,
    Node,
    _assign_weights,
    _convert,
    _fmt_shape,
)

__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json"]

# Callbacks whose only effect is a file: on ranks other than 0 of a data-parallel fit they are left out.
_RANK0_CALLBACKS = (_callbacks.ModelCheckpoint, _callbacks.CSVLogger)


def _keras_layer_order(ins, outs, order) -> list:
    """The model's layers in Keras' order (``model.layers``, and so ``weights`` and ``summary()``): by decreasing
    depth, a node's depth being its longest path to an output and a layer's the largest of its nodes', ties
    broken by the pre-order of a depth-first walk from the outputs (Keras' ``map_graph``). ``order``: the nodes
    between inputs and outputs, parents first."""
    input_ids = {id(t) for t in ins}
    first_seen: dict = {}  # id(layer) -> pre-order index
    layer_of: dict = {}
    finished = set()
    for root in outs:
        stack = [root]
        while stack:
            t = stack.pop()
            node = _producer(t)
            if id(node) in finished:
                continue
            finished.add(id(node))
            layer = node.layer
            if id(layer) not in first_seen:
                first_seen[id(layer)] = len(first_seen)
                layer_of[id(layer)] = layer
            if id(t) not in input_ids and not isinstance(layer, InputLayer):
                stack.extend(reversed(node.inputs))  # visited in input order
    depth: dict = {id(_producer(t)): 0 for t in outs}
    for node in reversed(order):
        d = depth.get(id(node), 0)
        for t in node.inputs:
            parent = _producer(t)
            depth[id(parent)] = max(depth.get(id(parent), 0), d + 1)
    layer_depth: dict = {}
    nodes = {id(n): n for n in order}
    nodes.update({id(_producer(t)): _producer(t) for t in ins})
    for node_id, d in depth.items():
        node = nodes.get(node_id)
        if node is not None:
            layer_depth[id(node.layer)] = max(layer_depth.get(id(node.layer), 0), d)
    return sorted(
        (layer_of[k] for k in first_seen if k in layer_depth),
        key=lambda layer: (-layer_depth[id(layer)], first_seen[id(layer)]),
    )


def _tensor_list(ts) -> list:
    """A model's ``inputs`` or ``outputs`` argument (a tensor, a list / tuple or a dict of them) as a list."""
    if isinstance(ts, dict):
        return list(ts.values())
    return list(ts) if isinstance(ts, (list, tuple)) else [ts]


class _Step:
    """One node of the plan: the layer, where its inputs and output live, and the layouts involved."""

    __slots__ = ("haves", "in_slots", "layer", "node", "out_slot", "wants")

    def __init__(self, layer, node, in_slots, haves, wants, out_slot):
        self.layer, self.node = layer, node
        self.in_slots, self.haves, self.wants, self.out_slot = in_slots, haves, wants, out_slot


def _producer(t: KerasTensor) -> Node:
    return t._node


def _verbose(verbose) -> int:
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool) or verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 'auto', 0, 1 or 2. Received: verbose={verbose}")
    return int(verbose)


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value}")
    return int(value)


# ======================================================================================================
# Model


class Model(Layer):
    """A functional model: ``Model(inputs, outputs, name=None)``, ``inputs`` / ``outputs`` symbolic tensors
    (one or a list) from ``fastconv.keras.Input`` and layer calls. A model is itself a layer: it can be called
    on symbolic tensors (a nested model) or on arrays (inference)."""

    _is_model = True

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if (inputs is None or outputs is None) and not isinstance(self, Sequential):
            raise NotImplementedError(
                "fastconv.keras supports functional models, Model(inputs, outputs), and "
                "Sequential; subclassed models (a call() method) cannot run on its kernels"
            )
        default = "sequential" if isinstance(self, Sequential) else "functional"
        super().__init__(name=name or backend.unique_name(default), trainable=trainable, **kwargs)
        self._reset_compile()
        self._plan = []
        self._layers: list[Layer] = []
        if inputs is not None:
            self._init_graph(inputs, outputs)

    # ---- graph

    def _init_graph(self, inputs, outputs):
        self._single_input = not isinstance(inputs, (list, tuple, dict))
        self._single_output = not isinstance(outputs, (list, tuple, dict))
        ins, outs = _tensor_list(inputs), _tensor_list(outputs)
        for what, ts in (("inputs", ins), ("outputs", outs)):
            for t in ts:
                if not isinstance(t, KerasTensor):
                    raise ValueError(
                        f"All `{what}` values must be KerasTensors. Received: {what}={t!r} (of type "
                        f"{type(t).__name__})"
                    )
        if not ins or not outs:
            raise ValueError("A model needs at least one input and one output")
        self.inputs, self.outputs = ins, outs
        input_ids = {id(t) for t in ins}
        # topological order of the nodes between the inputs and the outputs (iterative post-order DFS)
        done, order = set(), []
        for root in outs:
            if id(root) in input_ids:
                continue
            stack = [(_producer(root), 0)]
            while stack:
                node, i = stack.pop()
                if id(node) in done:
                    continue
                if i < len(node.inputs):
                    stack.append((node, i + 1))
                    t = node.inputs[i]
                    if id(t) in input_ids:
                        continue
                    parent = _producer(t)
                    if isinstance(parent.layer, InputLayer):
                        raise ValueError(
                            f"Graph disconnected: cannot find parent for tensor {t} of the outputs: it "
                            f'comes from the input layer "{parent.layer.name}", which is not in the '
                            "model's `inputs`"
                        )
                    if id(parent) not in done:
                        stack.append((parent, 0))
                elif not isinstance(node.layer, InputLayer):
                    done.add(id(node))
                    order.append(node)
                else:
                    done.add(id(node))
        slots = {id(t): k for k, t in enumerate(ins)}
        plan = []
        for node in order:
            out = node.outputs[0]
            slots[id(out)] = len(slots)
            plan.append(
                _Step(
                    node.layer,
                    node,
                    [slots[id(t)] for t in node.inputs],
                    [t._t for t in node.inputs],
                    list(node.wants),
                    slots[id(out)],
                )
            )
        self._plan, self._nslots = plan, len(slots)
        self._in_slots = list(range(len(ins)))
        self._out_slots = [slots[id(t)] for t in outs]
        layers = _keras_layer_order(ins, outs, order)
        names = {}
        for layer in layers:
            names[layer.name] = names.get(layer.name, 0) + 1
        dup = [n for n, c in names.items() if c > 1]
        if dup:
            raise ValueError(
                f'The name "{dup[0]}" is used {names[dup[0]]} times in the model. All operation names '
                "should be unique."
            )
        self._layers = layers
        self._requires_cache = {}
        self.built = True
        self._build_shapes = [t.shape for t in ins]

    @property
    def layers(self) -> list:
        return list(self._layers)

    def get_layer(self, name=None, index=None):
        """A layer by name or index (Keras' ``get_layer``)."""
        if index is not None and name is not None:
            raise ValueError(
                f"Provide only a layer name or a layer index. Received: index={index}, name={name}."
            )
        if index is not None:
            if len(self.layers) <= index:
                raise ValueError(
                    f"Was asked to retrieve layer at index {index} but model only has "
                    f"{len(self.layers)} layers."
                )
            return self.layers[index]
        if name is not None:
            for layer in self.layers:
                if layer.name == name:
                    return layer
            raise ValueError(
                f"No such layer: {name}. Existing layers are: {[la.name for la in self.layers]}."
            )
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    def _unique(self, lists):
        out, seen = [], set()
        for vs in lists:
            for v in vs:
                if id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    @property
    def weights(self) -> list:
        return self._unique(la.weights for la in self._layers)

    @property
    def trainable_weights(self) -> list:
        return self._unique(la.trainable_weights for la in self._layers) if self.trainable else []

    @property
    def non_trainable_weights(self) -> list:
        ids = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in ids]

    def count_params(self) -> int:
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on model '{self.name}', but the model isn't built. "
                "You can build it manually via: `model.build(input_shape)`."
            )
        return int(sum(math.prod(v.shape) for v in self.weights))

    @property
    def input_shape(self):
        shapes = [t.shape for t in self.inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        shapes = [t.shape for t in self.outputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def input(self):
        return self.inputs[0] if len(self.inputs) == 1 else list(self.inputs)

    @property
    def output(self):
        return self.outputs[0] if len(self.outputs) == 1 else list(self.outputs)

    # ---- running the graph

    def _requires(self, need_inputs: tuple) -> list:
        """Per slot: whether its gradient is needed (a trainable weight or a needed input is upstream)."""
        req = self._requires_cache.get(need_inputs)
        if req is None:
            req = [False] * self._nslots
            for s, n in zip(self._in_slots, need_inputs):
                req[s] = bool(n)
            for st in self._plan:
                req[st.out_slot] = any(req[s] for s in st.in_slots) or bool(st.layer.trainable_weights)
            self._requires_cache[need_inputs] = req
        return req

    def _run_forward(self, xs, training, logits=False):
        """Outputs (fastconv layouts) and per-node contexts of a forward pass; ``logits``: the output layer
        skips its softmax / sigmoid (fused with the loss)."""
        vals = [None] * self._nslots
        for s, x in zip(self._in_slots, xs):
            vals[s] = x
        ctxs = []
        last = self._out_slots[0]
        for st in self._plan:
            inp = [_convert(vals[s], h, w) for s, h, w in zip(st.in_slots, st.haves, st.wants)]
            ctx = {"_wants": st.wants}
            vals[st.out_slot] = st.layer._forward(inp, ctx, training, logits and st.out_slot == last)
            ctxs.append(ctx)
        return [vals[s] for s in self._out_slots], ctxs

    def _run_backward(self, douts, ctxs, need_inputs=None):
        """Backpropagate ``douts`` (one per output, or None) through the plan; weights get their gradients.
        Returns the inputs' gradients (None where not needed)."""
        need_inputs = tuple(need_inputs or (False,) * len(self._in_slots))
        req = self._requires(need_inputs)
        grads = [None] * self._nslots
        for s, d in zip(self._out_slots, douts):
            if d is not None:
                grads[s] = d if grads[s] is None else grads[s] + d
        for k in range(len(self._plan) - 1, -1, -1):
            st = self._plan[k]
            g = grads[st.out_slot]
            grads[st.out_slot] = None
            if g is None or not req[st.out_slot]:
                continue
            need = [req[s] for s in st.in_slots]
            dxs = st.layer._backward(g, ctxs[k], need)
            for s, h, w, n, dx in zip(st.in_slots, st.haves, st.wants, need, dxs):
                if n and dx is not None:
                    dx = _convert(dx, w, h)
                    # a tensor read by several nodes: the sum of their gradients (NumPy's add)
                    grads[s] = dx if grads[s] is None else grads[s] + dx
        return [grads[s] for s in self._in_slots]

    # ---- the model as a layer (nested in another model, or called on arrays)

    @property
    def _n_inputs(self):
        return 1 if len(self.inputs) == 1 else None

    def _check_input(self, i, shape):
        if i >= len(self.inputs):
            raise ValueError(f'Layer "{self.name}" expects {len(self.inputs)} input(s), but it received more')
        want = self.inputs[i].shape
        if len(shape) != len(want) or any(
            a is not None and b is not None and a != b for a, b in zip(want[1:], shape[1:])
        ):
            raise ValueError(
                f'Input {i} of layer "{self.name}" is incompatible with the layer: expected shape='
                f"{_fmt_shape(want)}, found shape={_fmt_shape(shape)}"
            )

    def compute_output_shape(self, input_shape):
        return tuple(self.outputs[0].shape)

    def _want_t(self, i, ndim, have):
        return self.inputs[i]._t

    def _out_t(self, wants, out_shape):
        return self.outputs[0]._t

    def _call_symbolic(self, flat):
        if len(self.outputs) != 1:
            raise NotImplementedError(f"calling the model {self.name} (several outputs) on symbolic tensors")
        return super()._call_symbolic(flat)

    def _forward(self, xs, ctx, training, logits):
        outs, ctx["ctxs"] = self._run_forward(xs, training, logits)
        return outs[0]

    def _backward(self, dout, ctx, need):
        return self._run_backward([dout], ctx["ctxs"], tuple(need))

    def __call__(self, inputs, training=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}.__call__ got unexpected keyword arguments {sorted(kwargs)}"
            )
        flat = (
            list(inputs.values())
            if isinstance(inputs, dict)
            else list(inputs)
            if isinstance(inputs, (list, tuple))
            else [inputs]
        )
        if all(isinstance(t, KerasTensor) for t in flat):
            if not self.built:
                self.build(flat[0].shape)
            return self._call_symbolic(flat)
        xs = self._prepare_x(inputs)
        outs, _ = self._run_forward(xs, bool(training))
        outs = [_convert(o, t._t, False) for o, t in zip(outs, self.outputs)]
        return outs[0] if len(outs) == 1 else outs

    # ---- data at the model's edge

    def _prepare_x(self, x) -> list:
        """Input arrays as the graph takes them: the Input's dtype, fastconv's layout, shapes checked."""
        if isinstance(x, dict):
            names = [_producer(t).layer.name for t in self.inputs]
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"Missing data for input(s) {missing}: the model's inputs are {names}")
            xs = [x[n] for n in names]
        elif isinstance(x, (list, tuple)) and len(self.inputs) > 1:
            xs = list(x)
        else:
            xs = [x]
        if len(xs) != len(self.inputs):
            raise ValueError(
                f'Layer "{self.name}" expects {len(self.inputs)} input(s), but it received {len(xs)} '
                "input tensors."
            )
        out = []
        for i, (a, t) in enumerate(zip(xs, self.inputs)):
            if a is None:
                raise ValueError(f'Input {i} of model "{self.name}": expected an array, got None')
            a = ops.as_array(a, "x")
            if a.dtype.kind in "biu":
                a = a.astype(t.dtype)  # Keras casts integer images (uint8) to float without scaling
            elif a.dtype.kind != "f":
                raise TypeError(
                    f'Input {i} of model "{self.name}": expected a numeric array, got dtype {a.dtype}'
                )
            elif a.dtype != np.dtype(t.dtype):
                a = a.astype(t.dtype)
            want = t.shape
            if a.ndim != len(want) or any(w is not None and w != s for w, s in zip(want[1:], a.shape[1:])):
                raise ValueError(
                    f'Input {i} of layer "{self.name}" is incompatible with the layer: expected shape='
                    f"{_fmt_shape(want)}, found shape={_fmt_shape(a.shape)}"
                )
            if a.shape[0] == 0:
                raise ValueError(f'Input {i} of model "{self.name}" is empty (shape {a.shape})')
            out.append(_convert(a, False, t._t))
        n = {a.shape[0] for a in out}
        if len(n) > 1:
            raise ValueError(
                f"Data cardinality is ambiguous: the inputs have sizes {sorted(n)}. Make sure all "
                "arrays contain the same number of samples."
            )
        return out

    def _ensure_built(self, x):
        if not self.built:
            first = x[0] if isinstance(x, (list, tuple)) else x
            shape = np.shape(first)
            if len(shape) == 0:
                raise ValueError(f"Cannot build the model {self.name} from an input of shape {shape}")
            self.build((None, *shape[1:]))

    # ---- compile

    def _reset_compile(self):
        self.optimizer = None
        self.loss = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._loss_obj = None
        self._metric_objs = []
        self._loss_tracker = _metrics.Mean(name="loss")
        self._fuse = None
        self._compile_config = None

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        weighted_metrics=None,
        run_eagerly=False,
        steps_per_execution=1,
        jit_compile="auto",
        auto_scale_loss=True,
    ):
        """Configure training: ``optimizer``, ``loss`` by name or object, ``metrics`` a list (e.g. accuracy).

        Keras' default optimizer is ``'rmsprop'``. ``loss_weights``, ``weighted_metrics``: not supported.
        """
        if loss_weights is not None or weighted_metrics is not None:
            raise NotImplementedError(
                "compile: `loss_weights` and `weighted_metrics` are not supported by "
                "fastconv.keras (models train with one output and one loss)"
            )
        self.optimizer = _optimizers.get(optimizer)
        self._loss_obj = None if loss is None else _losses.get(loss)
        self.loss = loss
        if metrics is None:
            metrics = []
        elif isinstance(metrics, dict):
            raise NotImplementedError("compile: per-output `metrics` dicts are not supported (one output)")
        elif isinstance(metrics, (str, _metrics.Metric)):
            raise ValueError(
                f"Expected `metrics` argument to be a list, tuple, or dict. Received instead: "
                f"metrics={metrics} of type {type(metrics)}"
            )
        kind = self._loss_obj.kind if self._loss_obj is not None else "categorical"
        self._metric_objs = [_metrics.get(m, kind) for m in metrics]
        self._metric_ids = [m if isinstance(m, str) else type(m).__name__ for m in metrics]
        self._loss_tracker = _metrics.Mean(name="loss")
        self._fuse = None
        self.compiled = True
        self.stop_training = False

    @property
    def metrics_names(self) -> list:
        return ["loss", *(m.name for m in self._metric_objs)] if self.compiled else []

    def _setup_loss(self):
        """Decide, once, how the loss meets the output: fused with its softmax / sigmoid, or on logits."""
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")
        if self._loss_obj is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        if self._fuse is not None:
            return
        if len(self.outputs) != 1:
            raise NotImplementedError(
                "training a model with several outputs is not supported by fastconv.keras"
            )
        loss = self._loss_obj
        layer = _producer(self.outputs[0]).layer
        act = (
            layer.activation if isinstance(layer, (Dense, Activation)) else getattr(layer, "activation", None)
        )
        want = loss.activation
        if want is None:  # a loss on the output as it is (mse): the output's activation runs as a layer's
            self._fuse = False
            return
        if loss.from_logits:
            if act == want:
                raise NotImplementedError(
                    f"{loss.name}(from_logits=True) on the output of {layer.name}, which already "
                    f"applies {want}: drop the activation, or use from_logits=False"
                )
            self._fuse = False
            return
        if act != want or not isinstance(layer, (Dense, Activation)):
            raise NotImplementedError(
                f"{loss.name} with from_logits=False runs fused with the model's output {want} (fastconv has "
                f"no "
                f'cross-entropy kernel on probabilities), but the output layer "{layer.name}" '
                f"({type(layer).__name__}) applies {act!r}. End the model with activation='{want}' (e.g. "
                f"Dense(units, activation='{want}')) or compile with from_logits=True."
            )
        self._fuse = True

    # ---- one step

    def _scores(self, out):
        t = self.outputs[0]
        out = _convert(out, t._t, False)
        return out, out.reshape(-1, out.shape[-1]) if out.ndim > 1 else out.reshape(-1, 1)

    def _step(self, xs, y, train: bool, dp=None, weight: float = 1.0) -> float:
        """Forward (and backward + update when ``train``) on one batch; updates the loss / metric trackers.

        ``dp`` (a :class:`~fastconv.keras.distribution.DataParallel`): the batch is this rank's shard, holding
        ``weight`` of the global batch; the gradients are summed over the ranks before the update."""
        outs, ctxs = self._run_forward(xs, train, logits=self._fuse)
        logical, scores = self._scores(outs[0])
        scores, t = self._loss_obj._prepare(scores, y)
        loss, probs, grad = self._loss_obj._fused(scores, t, train)
        if train:
            tv = self._train_vars
            for v in tv:
                v._grad = None
            dout = _convert(grad.reshape(logical.shape), False, self.outputs[0]._t)
            self._run_backward([dout], ctxs)
            params, grads = {}, {}
            for k, v in zip(self._train_keys, tv):
                if v._grad is not None:
                    params[k], grads[k] = v._data, v._grad
            if params:
                if dp is not None:
                    dp.average_gradients(grads, weight)
                self.optimizer.apply(params, grads)
            for v in tv:
                v._grad = None
        n = xs[0].shape[0]
        self._loss_tracker.update_state(loss, sample_weight=n)
        for m in self._metric_objs:
            m.update_state(t, probs)
        return loss

    def _prepare_train(self):
        self._setup_loss()
        self._train_vars = self.trainable_weights
        self._train_keys = [f"{i:04d}" for i in range(len(self._train_vars))]

    def _logs(self) -> dict:
        logs = {m.name: m.result() for m in self._metric_objs}
        logs["loss"] = self._loss_tracker.result()
        return logs

    def reset_metrics(self) -> None:
        """Reset the loss and metric trackers (``train_on_batch`` / ``test_on_batch`` accumulate: Keras 3)."""
        self._loss_tracker.reset_state()
        for m in self._metric_objs:
            m.reset_state()

    def _results(self, return_dict):
        logs = self._logs()
        if return_dict:
            return logs
        vals = [logs["loss"], *(logs[m.name] for m in self._metric_objs)]
        return vals[0] if len(vals) == 1 else vals

    # ---- fit / evaluate / predict

    def _xy(self, x, y, what="x"):
        if x is None:
            raise ValueError(f"`{what}` must be provided (arrays; generators and datasets are not supported)")
        self._ensure_built(x)
        xs = self._prepare_x(x)
        if y is None:
            raise ValueError("`y` must be provided: fastconv.keras trains on arrays (x, y)")
        y = np.asarray(y)
        if y.shape[0] != xs[0].shape[0]:
            raise ValueError(
                f"Data cardinality is ambiguous. Make sure all arrays contain the same number of "
                f"samples. 'x' sizes: {xs[0].shape[0]}, 'y' sizes: {y.shape[0]}"
            )
        if (
            y.dtype.kind == "f"
            and y.dtype != np.dtype(self.outputs[0].dtype)
            and self._loss_obj is not None
            and self._loss_obj.kind != "sparse"
        ):
            y = y.astype(self.outputs[0].dtype)  # once, not per batch
        return xs, y

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
    ):
        """Train for ``epochs`` epochs of ``batch_size`` (default 32) samples; returns the ``History``.

        ``validation_split`` takes the last fraction of the data before shuffling (as Keras);
        ``validation_data`` is ``(x_val, y_val)``. The progress bar and logs are Keras': ``Epoch 1/5``, then
        per batch the running means of the loss and metrics. ``class_weight``, ``sample_weight`` and the
        ``*_steps`` arguments are not supported.
        """
        for name, value in (
            ("class_weight", class_weight),
            ("sample_weight", sample_weight),
            ("steps_per_epoch", steps_per_epoch),
            ("validation_steps", validation_steps),
        ):
            if value is not None:
                raise NotImplementedError(f"fit: `{name}` is not supported by fastconv.keras")
        verbose = _verbose(verbose)
        batch_size = 32 if batch_size is None else _positive_int(batch_size, "batch_size")
        epochs = int(epochs)
        if not 0.0 <= float(validation_split) < 1.0:
            raise ValueError(
                f"`validation_split` must be in [0, 1). Received: validation_split={validation_split}"
            )
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")
        xs, y = self._xy(x, y)
        n = xs[0].shape[0]
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
                raise ValueError(
                    "`validation_data` should be a tuple `(x_val, y_val)` or `(x_val, y_val, "
                    f"val_sample_weights)`. Received: validation_data={type(validation_data)}"
                )
            if len(validation_data) == 3 and validation_data[2] is not None:
                raise NotImplementedError("fit: validation sample weights are not supported")
            val = self._xy(validation_data[0], validation_data[1], "validation_data")
        elif validation_split:
            split = math.floor(n * (1.0 - validation_split))
            if split == 0 or split == n:
                raise ValueError(
                    f"Training data contains {n} samples, which is not sufficient to split it into a "
                    f"validation and training set as specified by `validation_split="
                    f"{validation_split}`. Either provide more data, or a different value for the "
                    "`validation_split` argument."
                )
            val = ([a[split:] for a in xs], y[split:])
            xs, y, n = [a[:split] for a in xs], y[:split], split
        val_bs = (
            batch_size
            if validation_batch_size is None
            else _positive_int(validation_batch_size, "validation_batch_size")
        )
        self._prepare_train()
        dp = _distribution.distribution()
        if dp is not None and dp.rank != 0:  # only rank 0 prints and writes files
            verbose = 0
            callbacks = [c for c in callbacks or [] if not isinstance(c, _RANK0_CALLBACKS)]
        steps = -(-n // batch_size)
        history = _callbacks.History()
        cbs = list(callbacks or [])
        if verbose:
            cbs.insert(0, _callbacks.ProgbarLogger())
        cbs.append(history)
        cbl = _callbacks.CallbackList(cbs, model=self, verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        self.history = history
        rng = backend.rng() if dp is None else dp.begin(self)
        cbl.on_train_begin()
        logs = {}
        for epoch in range(int(initial_epoch), epochs):
            self.reset_metrics()
            cbl.on_epoch_begin(epoch)
            perm = rng.permutation(n) if shuffle else None
            for step in range(steps):
                cbl.on_train_batch_begin(step)
                sel = slice(step * batch_size, min(n, (step + 1) * batch_size))
                if perm is not None:
                    sel = perm[sel]
                if dp is None:
                    self._step([a[sel] for a in xs], y[sel], True)
                else:
                    glob = np.arange(n)[sel] if isinstance(sel, slice) else sel
                    part = dp.shard(glob)
                    if part is not None:
                        self._step([a[part] for a in xs], y[part], True, dp, len(part) / len(glob))
                cbl.on_train_batch_end(step, self._logs())
                if self.stop_training:
                    break
            if dp is not None:
                dp.reduce_trackers([self._loss_tracker, *self._metric_objs])
                dp.average_buffers(self)
            logs = self._logs()
            if val is not None and (epoch + 1) % int(validation_freq) == 0:
                logs.update({f"val_{k}": v for k, v in self._evaluate_arrays(*val, val_bs, dp=dp).items()})
            if dp is not None:
                dp.check_in_step(self, epoch)
            cbl.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        cbl.on_train_end(logs)
        return history

    def _evaluate_arrays(self, xs, y, batch_size, cbl=None, dp=None) -> dict:
        """Loss and metrics over ``(xs, y)``; with ``dp`` each rank takes its part and the sums are added."""
        self.reset_metrics()
        if dp is not None:
            part = dp.local_part(xs[0].shape[0])
            xs, y = [a[part] for a in xs], y[part]
        n = xs[0].shape[0]
        steps = -(-n // batch_size)
        if cbl is not None:
            cbl.on_test_begin()
        for step in range(steps):
            sel = slice(step * batch_size, min(n, (step + 1) * batch_size))
            if cbl is not None:
                cbl.on_test_batch_begin(step)
            self._step([a[sel] for a in xs], y[sel], False)
            if cbl is not None:
                cbl.on_test_batch_end(step, self._logs())
        if dp is not None:
            dp.reduce_trackers([self._loss_tracker, *self._metric_objs])
        logs = self._logs()
        if cbl is not None:
            cbl.on_test_end(logs)
        return logs

    def evaluate(
        self,
        x=None,
        y=None,
        batch_size=None,
        verbose="auto",
        sample_weight=None,
        steps=None,
        callbacks=None,
        return_dict=False,
    ):
        """Loss and metrics on ``(x, y)``: ``[loss, *metrics]`` (the loss alone without metrics) or a dict."""
        if sample_weight is not None or steps is not None:
            raise NotImplementedError(
                "evaluate: `sample_weight` and `steps` are not supported by fastconv.keras"
            )
        verbose = _verbose(verbose)
        batch_size = 32 if batch_size is None else _positive_int(batch_size, "batch_size")
        self._setup_loss()
        xs, y = self._xy(x, y)
        dp = _distribution.distribution()
        if dp is not None and dp.rank != 0:
            verbose = 0
        cbs = list(callbacks or [])
        if verbose:
            cbs.insert(0, _callbacks.ProgbarLogger())
        n = xs[0].shape[0] if dp is None else len(dp.local_part(xs[0].shape[0]))
        steps = -(-n // batch_size)
        cbl = _callbacks.CallbackList(cbs, model=self, verbose=verbose, epochs=1, steps=steps, mode="test")
        self._evaluate_arrays(xs, y, batch_size, cbl, dp=dp)
        return self._results(return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs on ``x`` (inference mode: dropout off, batch norm on its moving statistics)."""
        if steps is not None:
            raise NotImplementedError("predict: `steps` is not supported by fastconv.keras")
        verbose = _verbose(verbose)
        batch_size = 32 if batch_size is None else _positive_int(batch_size, "batch_size")
        self._ensure_built(x)
        xs = self._prepare_x(x)
        n = xs[0].shape[0]
        nsteps = -(-n // batch_size)
        cbs = list(callbacks or [])
        if verbose:
            cbs.insert(0, _callbacks.ProgbarLogger())
        cbl = _callbacks.CallbackList(cbs, model=self, verbose=verbose, epochs=1, steps=nsteps)
        cbl.on_predict_begin()
        parts = [[] for _ in self.outputs]
        for step in range(nsteps):
            sel = slice(step * batch_size, min(n, (step + 1) * batch_size))
            cbl.on_predict_batch_begin(step)
            outs, _ = self._run_forward([a[sel] for a in xs], False)
            for p, o, t in zip(parts, outs, self.outputs):
                p.append(_convert(o, t._t, False))
            cbl.on_predict_batch_end(step)
        cbl.on_predict_end()
        res = [np.concatenate(p, axis=0) for p in parts]
        return res[0] if len(res) == 1 else res

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One training step on one batch; returns that batch's loss and metrics (the metrics are reset first,
        as Keras 3.15 does)."""
        if sample_weight is not None or class_weight is not None:
            raise NotImplementedError("train_on_batch: sample and class weights are not supported")
        if not self.compiled:
            raise ValueError("You must call `compile()` before using the model.")
        xs, y = self._xy(x, y)
        self._prepare_train()
        self.reset_metrics()
        self._step(xs, y, True)
        return self._results(return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics of one batch (the metrics reset first, as :meth:`train_on_batch`'s)."""
        if sample_weight is not None:
            raise NotImplementedError("test_on_batch: sample weights are not supported")
        self._setup_loss()
        xs, y = self._xy(x, y)
        self.reset_metrics()
        self._step(xs, y, False)
        return self._results(return_dict)

    def predict_on_batch(self, x):
        """The outputs on one batch (one forward pass, inference mode)."""
        self._ensure_built(x)
        outs, _ = self._run_forward(self._prepare_x(x), False)
        outs = [_convert(o, t._t, False) for o, t in zip(outs, self.outputs)]
        return outs[0] if len(outs) == 1 else outs

    # ---- weights

    def get_weights(self) -> list:
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights) -> None:
        _assign_weights(self.name, self.weights, weights)

    # ---- saving

    def save(self, filepath, overwrite=True, zipped=None, **kwargs):
        """Write ``filepath`` (``.keras``): a zip of ``config.json``, ``metadata.json``, ``model.weights.npz``
        (the weights and the optimizer state as NumPy arrays; no pickle)."""
        from . import saving

        saving.save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite=True):
        """Write the weights to ``filepath`` ending in ``.weights.npz`` (Keras writes ``.weights.h5``)."""
        from . import saving

        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Read weights written by :meth:`save_weights` (``.weights.npz``) or :meth:`save` (``.keras``)."""
        from . import saving

        saving.load_weights(self, filepath, skip_mismatch=skip_mismatch)

    def _node_index(self) -> dict:
        """id(node) -> (layer name, index of the node among that layer's calls in this model)."""
        index, count = {}, {}
        for t in self.inputs:
            index[id(_producer(t))] = (_producer(t).layer.name, 0)
        for st in self._plan:
            k = count.get(st.layer.name, 0)
            count[st.layer.name] = k + 1
            index[id(st.node)] = (st.layer.name, k)
        return index

    def get_config(self) -> dict:
        index = self._node_index()
        nodes = [
            [st.layer.name, [list(index[id(_producer(t))]) + [0] for t in st.node.inputs]]
            for st in self._plan
        ]
        from .saving import serialize_layer

        return {
            "name": self.name,
            "trainable": self.trainable,
            "layers": [serialize_layer(la) for la in self._layers],
            "nodes": nodes,
            "input_layers": [[_producer(t).layer.name, 0, 0] for t in self.inputs],
            "output_layers": [list(index[id(_producer(t))]) + [0] for t in self.outputs],
        }

    @classmethod
    def from_config(cls, config):
        from .saving import deserialize_layer

        layers = {}
        for entry in config["layers"]:
            layer = deserialize_layer(entry)
            layers[layer.name] = layer
        tensors = {}
        for name, _, _ in config["input_layers"]:
            tensors[(name, 0)] = layers[name].output_tensor
        count = {}
        for name, refs in config["nodes"]:
            ins = [tensors[(r[0], r[1])] for r in refs]
            k = count.get(name, 0)
            count[name] = k + 1
            tensors[(name, k)] = layers[name](ins[0] if len(ins) == 1 else ins)
        ins = [tensors[(r[0], r[1])] for r in config["input_layers"]]
        outs = [tensors[(r[0], r[1])] for r in config["output_layers"]]
        return cls(
            ins[0] if len(ins) == 1 else ins,
            outs[0] if len(outs) == 1 else outs,
            name=config["name"],
            trainable=config.get("trainable", True),
        )

    def to_json(self, **kwargs) -> str:
        from .saving import serialize_layer

        return json.dumps(serialize_layer(self), **kwargs)

    # ---- summary

    def summary(
        self,
        line_length=None,
        positions=None,
        print_fn=None,
        expand_nested=False,
        show_trainable=False,
        layer_range=None,
    ):
        """Print Keras' table: layer (type), output shape, param # (and connections in non-sequential graphs),
        then the totals (``Total params: 1,199,882 (4.58 MB)``)."""
        if not self.built:
            raise ValueError(
                "This model has not yet been built. Build the model first by calling `build()` or by "
                "calling the model on a batch of data."
            )
        _print_summary(self, line_length, positions, print_fn, show_trainable)

    def __repr__(self):
        return f"<{_class_name(self)} name={self.name}, built={self.built}>"


def _class_name(layer) -> str:
    return "Functional" if type(layer) is Model else type(layer).__name__


# ======================================================================================================
# Sequential


class Sequential(Model):
    """A stack of layers: ``Sequential([layers])``, ``add``, ``pop``, ``layers``.

    The input shape comes from an ``Input`` added first, or from the first layer's ``input_shape=`` (the
    tutorials' spelling), or from the first data the model sees (``fit`` / ``predict`` / ``build``).
    """

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name, trainable=trainable)
        self.built = False
        self._seq: list[Layer] = []
        self._input_layer = None
        self._data_shape = None
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._maybe_build()

    @property
    def layers(self) -> list:
        return [la for la in self._seq if not isinstance(la, InputLayer)]

    def add(self, layer, rebuild=True):
        """Append a layer (or an ``Input``, first); the graph is rebuilt when the input shape is known."""
        if isinstance(layer, KerasTensor) and isinstance(_producer(layer).layer, InputLayer):
            layer = _producer(layer).layer
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Only instances of `keras.Layer` can be added to a Sequential model. Received: {layer!r} "
                f"(of type {type(layer)})"
            )
        if isinstance(layer, InputLayer):
            if self._seq:
                raise ValueError(
                    "Sequential model: an Input can only be the first layer added. Received an Input "
                    f"after {len(self._seq)} layer(s)"
                )
            self._input_layer = layer
        names = {la.name for la in self._seq}
        if layer.name in names:
            raise ValueError(
                f"All layers added to a Sequential model should have unique names. Name '{layer.name}' "
                "is already the name of a layer in this model. Update the `name` argument to pass a "
                "unique name."
            )
        self._seq.append(layer)
        self.built = False
        if rebuild:
            try:
                self._maybe_build()
            except Exception:
                self._seq.pop()
                if isinstance(layer, InputLayer):
                    self._input_layer = None
                self._maybe_build()
                raise

    def pop(self, rebuild=True):
        """Remove and return the last layer."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._seq.pop()
        self.built = False
        if rebuild:
            self._maybe_build()
        return layer

    def _maybe_build(self):
        if self._input_layer is not None:
            shape = self._input_layer.batch_shape
        elif self.layers and self.layers[0]._batch_input_shape is not None:
            shape = self.layers[0]._batch_input_shape
        elif self._data_shape is not None:  # built from data before: keep that input shape
            shape = self._data_shape
        else:
            return
        self.build(shape)

    def build(self, input_shape=None):
        """Build the graph for inputs of ``input_shape`` (batch axis included, e.g. ``(None, 28, 28, 1)``)."""
        if input_shape is None:
            raise ValueError("You must provide an `input_shape` argument.")
        input_shape = tuple(input_shape)
        self._data_shape = input_shape
        if self._input_layer is not None and tuple(self._input_layer.batch_shape) == input_shape:
            inp = self._input_layer
        else:
            dtype = self.layers[0].dtype if self.layers else None
            inp = InputLayer(batch_shape=input_shape, dtype=dtype)
        if not self.layers:
            return
        x = inp.output_tensor
        for layer in self.layers:
            layer._inbound_nodes = []  # the graph is rebuilt whole: a layer's nodes are this model's
            x = layer(x)
        self._init_graph(inp.output_tensor, x)

    @property
    def _layers(self):
        return self.layers

    @_layers.setter
    def _layers(self, value):
        pass  # Model._init_graph's list; Sequential's layers are its own list

    def get_config(self) -> dict:
        from .saving import serialize_layer

        entries = []
        if self.built:
            entries.append(serialize_layer(_producer(self.inputs[0]).layer))
        entries.extend(serialize_layer(la) for la in self.layers)
        return {"name": self.name, "trainable": self.trainable, "layers": entries}

    @classmethod
    def from_config(cls, config):
        from .saving import deserialize_layer

        model = cls(name=config["name"], trainable=config.get("trainable", True))
        for entry in config["layers"]:
            model.add(deserialize_layer(entry), rebuild=False)
        model._maybe_build()
        return model


# ======================================================================================================
# summary


def _readable_size(nbytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes / 1024 < 1:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"


def _count(arrays) -> tuple[int, int]:
    n = sum(int(np.prod(a.shape)) for a in arrays)
    size = sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for a in arrays)
    return n, size


def _print_summary(model, line_length, positions, print_fn, show_trainable):
    p = print_fn or print
    layers = model.layers
    plan_nodes = {id(st.node) for st in model._plan}
    node_index = model._node_index()
    sequential_like = isinstance(model, Sequential) or (
        all(len(st.in_slots) == 1 for st in model._plan)
        and len({id(st.layer) for st in model._plan}) == len(model._plan)
        and len({st.in_slots[0] for st in model._plan}) == len(model._plan)
        and len(model.inputs) == 1
    )
    if sequential_like:
        default, positions = 88, positions or [0.45, 0.80, 1.0]
        header, align = ["Layer (type)", "Output Shape", "Param #"], ["l", "l", "r"]
    else:
        default, positions = 108, positions or [0.3, 0.56, 0.74, 1.0]
        header, align = ["Layer (type)", "Output Shape", "Param #", "Connected to"], ["l", "l", "r", "l"]
    if show_trainable:
        default += 12
        positions = [q * 0.90 for q in positions] + [1.0]
        header.append("Trainable")
        align.append("c")
    line_length = line_length or min(default, shutil.get_terminal_size().columns - 4)
    if positions[-1] <= 1:
        positions = [int(line_length * q) for q in positions]
    widths, cur = [], 0
    for q in positions:
        widths.append(int(q) - cur)
        cur = int(q)
    if min(widths) < 4:
        raise ValueError("Insufficient console width to print summary.")
    # the cells share the line with len(widths) + 1 borders
    inner = line_length - len(widths) - 1
    cells = [w * inner // sum(widths) for w in widths]
    cells[0] += inner - sum(cells)

    def rows_of(layer):
        nodes = [n for n in layer._inbound_nodes if isinstance(layer, InputLayer) or id(n) in plan_nodes]
        shapes = [n.outputs[0].shape for n in nodes] or ["?"]
        shape = _fmt_shape(shapes[-1]) if shapes[-1] != "?" else "?"
        if isinstance(layer, InputLayer):
            params = "0"
        elif layer.built:
            params = f"{layer.count_params():,}"
        else:
            params = "0 (unbuilt)"
        row = [f"{layer.name} ({_class_name(layer)})", shape, params]
        if not sequential_like:
            conns = [
                f"{node_index[id(_producer(t))][0]}[{node_index[id(_producer(t))][1]}][0]"
                for n in nodes
                for t in n.inputs
            ]
            row.append(", ".join(conns) or "-")
        if show_trainable:
            row.append(("Y" if layer.trainable else "N") if layer.weights else "-")
        return row

    def render(row):
        wrapped = [
            textwrap.wrap(c, max(1, w - 2), break_on_hyphens=False) or [""] for c, w in zip(row, cells)
        ]
        out = []
        for i in range(max(len(c) for c in wrapped)):
            parts = []
            for c, w, a in zip(wrapped, cells, align):
                s = c[i] if i < len(c) else ""
                s = s.rjust(w - 2) if a == "r" else s.center(w - 2) if a == "c" else s.ljust(w - 2)
                parts.append(f" {s} ")
            out.append("│" + "│".join(parts) + "│")
        return out

    def rule(left, mid, right, ch):
        return left + mid.join(ch * w for w in cells) + right

    p(f'Model: "{model.name}"')
    p(rule("┏", "┳", "┓", "━"))
    head = []
    for h, w, a in zip(header, cells, align):
        s = h.rjust(w - 2) if a == "r" else h.center(w - 2) if a == "c" else h.ljust(w - 2)
        head.append(f" {s} ")
    p("┃" + "┃".join(head) + "┃")
    p(rule("┡", "╇", "┩", "━"))
    shown = [la for la in (model._layers if not isinstance(model, Sequential) else layers)]
    for i, layer in enumerate(shown):
        for line in render(rows_of(layer)):
            p(line)
        if i < len(shown) - 1:
            p(rule("├", "┼", "┤", "─"))
    p(rule("└", "┴", "┘", "─"))
    tn, ts = _count([v._data for v in model.trainable_weights])
    nn, ns = _count([v._data for v in model.non_trainable_weights])
    opt = (
        model.optimizer if model.compiled and model.optimizer is not None and model.optimizer.built else None
    )
    on, osz = _count(opt.variables) if opt is not None else (0, 0)
    p(f" Total params: {tn + nn + on:,} ({_readable_size(ts + ns + osz)})")
    p(f" Trainable params: {tn:,} ({_readable_size(ts)})")
    p(f" Non-trainable params: {nn:,} ({_readable_size(ns)})")
    if opt is not None:
        p(f" Optimizer params: {on:,} ({_readable_size(osz)})")


# ======================================================================================================
# module functions


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Read a model written by ``model.save('m.keras')``: same config, bit-identical weights, and (with
    ``compile=True``) the compiled optimizer with its state, loss and metrics."""
    from . import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)


def model_from_json(json_string, custom_objects=None):
    """A new model (fresh weights) from ``model.to_json()``."""
    from .saving import deserialize_layer

    return deserialize_layer(json.loads(json_string))


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with ``model``'s architecture and fresh weights."""
    if input_tensors is not None or clone_function is not None:
        raise NotImplementedError("clone_model: `input_tensors` and `clone_function` are not supported")
    return model_from_json(model.to_json())
