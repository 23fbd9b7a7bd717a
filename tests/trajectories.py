"""Reference trajectories: recorded once from the PyTorch re-statements (tests/torch_*.py),
replayed by the step-parity tests without torch.

A trajectory is what a parity test compares ours against: the start weights, the reference's
losses at every step, its weights after the last step in float64 and in float32 (its own
float32 noise, the floor of the project's rule), and any arrays the reference drew. Weights are
lists in one fixed order of our model's variables, stored with their positions in
`model.weights` (so the replay needs no torch-side name mapping). Each test module that
replays one has a `record_<name>()` returning `trajectory(...)`;
`tests/fixtures/record_trajectories.py` writes them, `tests/test_fixtures_current.py`
re-records them with torch and checks they equal the committed files (`STATED_TOLERANCE`).
"""

import functools
import json
import os

import numpy as np

DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "trajectories")

# test module -> {trajectory name: recorder function name}
RECORDERS = {
    "test_step_parity": {"cyclegan": "record_cyclegan", "stargan": "record_stargan"},
    "test_pix2pix": {"pix2pix": "record_pix2pix"},
    "test_ugatit_parity": {"ugatit": "record_ugatit"},
    "test_nicegan_parity": {"nicegan": "record_nicegan"},
    "test_tuigan": {"tuigan": "record_tuigan"},
    "test_drit": {"drit": "record_drit"},
    "test_unit": {"unit": "record_unit", "unit_shared": "record_unit_shared"},
}

# Plain reference values (torch.optim.Adam's weights, LambdaLR's rates): test module ->
# {file name: recorder}, each recorder returning {key: array}; read with `reference_values`.
VALUE_RECORDERS = {
    "test_optimizer": {"adam": "record_adam"},
    "test_schedules": {"lambda_lr": "record_lambda_lr"},
    "test_unit": {"step_lr": "record_step_lr"},
}


def reference_values(name):
    """{key: array} of the committed reference values `name` (see VALUE_RECORDERS)."""
    return read(name)


def positions(model, variables):
    """Each variable's position in `model.weights` (deterministic for a model's code and config)."""
    index = {id(v): i for i, v in enumerate(model.weights)}
    return np.array([index[id(v)] for v in variables], np.int32)


def compact(array):
    """float32 when that is exact (start weights are float32 draws), else float64."""
    array = np.asarray(array, np.float64)
    single = array.astype(np.float32)
    return single if np.array_equal(single.astype(np.float64), array) else array


def trajectory(model, variables, start, final, final32, losses, gates=(), **arrays):
    """The arrays of one recorded trajectory.

    Args:
      model, variables: our model and the variables the lists below follow, in order.
      start, final, final32: values (Keras layout) before the steps, after them in the float64
        reference and after them in the float32 reference.
      losses: the reference's losses per step (JSON-able: floats, lists, dicts).
      gates: [(name, |input|, final)]: the float64 reference's final values with one ReLU
        gate at float32 round-off switched (UNIT's knife-edge gates), stored as float32
        differences from `final`.
      **arrays: anything else the replay needs (noise draws, ...).
    """
    out = {"positions": positions(model, variables), "losses": np.array(json.dumps(to_python(losses)))}
    for i, (s, f, f32) in enumerate(zip(start, final, final32, strict=True)):
        out[f"start/{i}"] = compact(s)
        out[f"final32/{i}"] = np.asarray(f32, np.float32)
        # float64 in 4 bytes: the float64 reference differs from the float32 one by float32
        # noise, so its residual in float32 keeps it to ~1e-7 of that noise (float64 exact for
        # every figure the tests compute) at half the size
        out[f"residual/{i}"] = (np.asarray(f, np.float64) - np.asarray(f32, np.float32)).astype(np.float32)
    if gates:
        out["gate/names"] = np.array([name for name, _, _ in gates])
        out["gate/inputs"] = np.array([size for _, size, _ in gates], np.float64)
    for j, (_, _, flipped) in enumerate(gates):
        for i, (f, g) in enumerate(zip(final, flipped, strict=True)):
            out[f"gate/{j}/{i}"] = (np.asarray(g, np.float64) - np.asarray(f, np.float64)).astype(np.float32)
    out.update({f"array/{k}": np.asarray(v) for k, v in arrays.items()})
    return out


def to_python(value):
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_python(v) for v in value]
    return float(value)


def path(name):
    return os.path.join(DIRECTORY, f"{name}.npz")


def save(name, arrays):
    os.makedirs(DIRECTORY, exist_ok=True)
    np.savez_compressed(path(name), **arrays)


def read(name):
    with np.load(path(name), allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


class Trajectory:
    """A committed trajectory, read for replay."""

    def __init__(self, name):
        data = read(name)
        self.name = name
        self.positions = data["positions"]
        count = len(self.positions)
        self.start = [data[f"start/{i}"].astype(np.float64) for i in range(count)]
        self.final32 = [data[f"final32/{i}"].astype(np.float64) for i in range(count)]
        self.final = [f32 + data[f"residual/{i}"] for i, f32 in enumerate(self.final32)]
        self.losses = json.loads(str(data["losses"]))
        self.arrays = {k[len("array/"):]: v for k, v in data.items() if k.startswith("array/")}
        names, inputs = data.get("gate/names", []), data.get("gate/inputs", [])
        self.gates = [(str(name), float(size), [f + data[f"gate/{j}/{i}"] for i, f in enumerate(self.final)])
                      for j, (name, size) in enumerate(zip(names, inputs))]

    def variables(self, model):
        """Our model's variables in the recorded order (shapes checked)."""
        weights = model.weights
        variables = [weights[i] for i in self.positions]
        for variable, value in zip(variables, self.start):
            assert tuple(variable.shape) == value.shape, (self.name, variable.path, value.shape)
        return variables

    def assign_start(self, model):
        for variable, value in zip(self.variables(model), self.start):
            variable.assign(value.astype(np.float32))

    def by_id(self, model, arrays):
        """{id(our variable): array} for `arrays` in the recorded order."""
        return {id(v): a for v, a in zip(self.variables(model), arrays)}

    def values(self, model):
        """Our model's current values in the recorded order, float64."""
        return [v.numpy().astype(np.float64) for v in self.variables(model)]


def difference(recorded, committed):
    """Largest deviations of a re-recorded trajectory from the committed one:
    {"start": max |Δ|, "final": ||Δ|| / ||update||, "final32": ||Δ|| / ||update||,
    "gates": the largest switched-gate final's ||Δ|| / ||update||, "losses": max relative Δ,
    "arrays": max |Δ|, "layout": problems with names/shapes (and gate names)}."""
    layout = []
    if set(recorded) != set(committed):
        layout.append(sorted(set(recorded) ^ set(committed)))
        return {"layout": layout}
    if not np.array_equal(recorded["positions"], committed["positions"]):
        layout.append("positions")
    if "gate/names" in committed and not np.array_equal(recorded["gate/names"], committed["gate/names"]):
        layout.append("gate/names")
    for k in recorded:
        if recorded[k].shape != committed[k].shape:
            layout.append(k)
    if layout:
        return {"layout": layout}
    count = len(committed["positions"])
    start = lambda i: committed[f"start/{i}"].astype(np.float64)
    for data in (recorded, committed):
        for i in range(count):
            data[f"final/{i}"] = data[f"final32/{i}"].astype(np.float64) + data[f"residual/{i}"]
    update = sum(float(np.sum((committed[f"final/{i}"] - start(i)) ** 2)) for i in range(count))
    out = {"layout": layout,
           "start": max(float(np.abs(recorded[f"start/{i}"].astype(np.float64) - start(i)).max(initial=0))
                        for i in range(count))}
    for kind in ("final", "final32"):
        miss = sum(float(np.sum((recorded[f"{kind}/{i}"].astype(np.float64)
                                 - committed[f"{kind}/{i}"].astype(np.float64)) ** 2)) for i in range(count))
        out[kind] = np.sqrt(miss / update)
    gates = len(committed.get("gate/names", []))
    out["gates"] = max((np.sqrt(sum(float(np.sum((recorded[f"gate/{j}/{i}"].astype(np.float64)
                                                   - committed[f"gate/{j}/{i}"]) ** 2)) for i in range(count))
                                / update) for j in range(gates)), default=0.0)
    if gates:
        out["gates"] = max(out["gates"], float(np.max(np.abs(recorded["gate/inputs"] / committed["gate/inputs"] - 1))))
    flat = lambda losses: np.array(list(leaves(json.loads(str(losses)))))
    new, old = flat(recorded["losses"]), flat(committed["losses"])
    out["losses"] = float(np.max(np.abs(new - old) / np.maximum(np.abs(old), 1e-12), initial=0))
    out["arrays"] = max((float(np.abs(recorded[k].astype(np.float64) - committed[k].astype(np.float64)).max(initial=0))
                         for k in recorded if k.startswith("array/")), default=0.0)
    return out


def leaves(value):
    if isinstance(value, dict):
        for k in sorted(value):
            yield from leaves(value[k])
    elif isinstance(value, list):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def spectral_norm_misses(layers, expected, float32):
    """(ours, the float32 reference's, one extra power iteration's) largest miss of the
    spectral-norm vectors u, v against the float64 reference. `layers`: [(u, v, kernel)]
    variables; `expected`, `float32`: {id(variable): array} of the two references."""
    worst = worst32 = extra_iteration = 0.0
    for u_variable, v_variable, kernel_variable in layers:
        for vector in (u_variable, v_variable):
            want = expected[id(vector)]
            worst = max(worst, np.abs(vector.numpy() - want).max())
            worst32 = max(worst32, np.abs(float32[id(vector)] - want).max())
        kernel = expected[id(kernel_variable)]
        matrix = kernel.reshape(-1, kernel.shape[-1]).T  # torch's weight.flatten(1), rest in Keras order
        u = expected[id(u_variable)]
        v = matrix.T @ u / np.linalg.norm(matrix.T @ u)
        extra_iteration = max(extra_iteration, np.abs(matrix @ v / np.linalg.norm(matrix @ v) - u).max())
    return worst, worst32, extra_iteration


# A ReLU input this close to 0 is within float32 round-off of the conv + norm outputs (of
# order 1) that feed the generators' ReLUs: which side it lands on depends on the summation
# order of the conv kernels (oneDNN's or Eigen's, XLA's, AVX-512 or AVX2), not on the step's
# formulation. Measured gates that flip: UNIT 2.6e-7 (seed 3, between torch's float32 and
# float64 and between TF with and without oneDNN on an AMD EPYC), 9.8e-7 (seed 0); CycleGAN
# 1.3e-6 (our XLA and graph steps on an AMD EPYC).
KNIFE_EDGE = 2e-6


def relu_gates(networks, run_steps, flip=None):
    """[(gate, |input|)] of the ReLU inputs within KNIFE_EDGE of 0 while `run_steps()` runs
    the torch `networks` ({name: module}). A gate is (module name, call index, element);
    `flip` runs with that one ReLU's derivative switched to the other side (its output moves
    by |input|): the reference as a float32 step that lands on the other side sees it."""
    import torch

    calls, near, handles = {}, [], []

    def hook(name, module, inputs, output):
        index = calls[name] = calls.get(name, -1) + 1
        x = inputs[0].detach()
        for element in torch.nonzero(x.abs() < KNIFE_EDGE).tolist():
            near.append(((name, index, tuple(element)), abs(float(x[tuple(element)]))))
        if flip is not None and flip[:2] == (name, index):
            mask = torch.zeros_like(x)
            mask[flip[2]] = 1.0
            return output + mask * inputs[0] * (1.0 if float(x[flip[2]]) < 0 else -1.0)
        return None

    for network, net in networks.items():
        for name, module in net.named_modules():
            if isinstance(module, torch.nn.ReLU):
                module.inplace = False  # the hook reads the input, which an in-place ReLU overwrites
                handles.append(module.register_forward_hook(functools.partial(hook, f"{network}.{name}")))
    try:
        run_steps()
    finally:
        for handle in handles:
            handle.remove()
    return near


def switched_gates(gated, order, effect, threshold):
    """`trajectory`'s gates: [(name, |input|, final)] for each knife-edge gate of the plain
    run, nearest 0 first, whose switching moves the float64 reference's update by more than
    `threshold` (a gate below it changes no verdict); one gate per distinct final.

    Args:
      gated: flip -> (float64 weights after the steps, [(gate, |input|)]), flip=None plain.
      order: weights -> the list `trajectory` stores.
      effect: weights -> the largest share of a group's update they miss the plain final by.
    """
    gates = []
    for gate, size in sorted(gated(None)[1], key=lambda item: item[1]):
        weights, _ = gated(gate)
        final = order(weights)
        seen = any(all(np.array_equal(a, b) for a, b in zip(final, other)) for _, _, other in gates)
        if not seen and effect(weights) > threshold:
            gates.append((repr(gate), size, final))  # a shared module's gate is seen under both names
    return gates
