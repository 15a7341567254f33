# ruff: noqa: UP031
"""The GPU load test, run by the WATCHED interpreter: does TensorFlow really compute on the GPU?

    <watched python> -B child.py [--matmul-size 4096] [--seconds 1.0]

Standalone on purpose: stdlib + TensorFlow only, never `monitor` (usually not installed in
the watched environment), and Python 3.5 syntax (no f-strings) so any TF 2.x interpreter runs
it. It writes one JSON object per line to stdout, flushed as it goes, so a crash half-way
still tells how far it got:

    {"event": "child", "pid": ..., "python": ..., "version": ...}     first line
    {"event": "start", "step": NAME}                                  before each step
    {"step": NAME, "ok": BOOL, "seconds": FLOAT, "detail": STR, ...}  after each step
    {"event": "done", "gpu_used": BOOL, "ok": BOOL}                   last line

Steps: import, build_info, gpus, matmul, train, memory, libraries. With no GPU it says why
(the `gpus` step's "reason") and runs the matmul and the Keras step on the CPU, so the user
learns that TensorFlow itself works. Exit status: 0 when it got to the end (even CPU-only),
1 when TensorFlow could not be imported, 2 on a usage error.
"""

import argparse
import json
import math
import os
import sys
import time
import traceback

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    # Our own directory holds the monitor's modules (runner.py, classify.py...): never let
    # them shadow a module TensorFlow or its dependencies import.
    del sys.path[0]

# Loaded files worth naming: the CUDA family (by name, or living in a pip nvidia/ wheel) and
# TensorFlow's own core libraries (not its hundred small _pywrap_* extension modules).
_LIB_WORDS = (
    "cuda",
    "cudnn",
    "cublas",
    "cufft",
    "curand",
    "cusolver",
    "cusparse",
    "nvrtc",
    "nvjitlink",
    "nccl",
    "nvidia",
    "cupti",
    "nvinfer",
    "nvml",
)
_TF_CORE = (
    "libtensorflow",
    "_pywrap_tensorflow_internal",
    "lib_pywrap_tensorflow_common",
    "tensorflow_framework",
    "tensorflow_cc",
)
_CHECK_ROWS = 64


def emit(obj):
    sys.stdout.write(json.dumps(obj, default=str, sort_keys=True) + "\n")
    sys.stdout.flush()


def error_text(exc):
    text = "%s: %s" % (type(exc).__name__, exc)
    return text if len(text) <= 4000 else text[:4000] + "..."


class Steps:
    """Runs steps, emitting start / result lines; remembers the results."""

    def __init__(self):
        self.results = {}

    def run(self, name, function, *args):
        emit({"event": "start", "step": name})
        started = time.perf_counter()
        try:
            data = function(*args) or {}
            ok = bool(data.pop("ok", True))
        except Exception as exc:
            data = {"detail": error_text(exc), "error_type": type(exc).__name__}
            ok = False
            # TensorFlow's own messages go to stderr; the traceback joins them there.
            traceback.print_exc()
            sys.stderr.flush()
        data.setdefault("detail", "")
        record = dict(data)
        record.update({"step": name, "ok": ok, "seconds": time.perf_counter() - started})
        emit(record)
        self.results[name] = record
        return record


# --------------------------------------------------------------------------- the steps


def step_build_info(tf):
    info = {}
    try:
        raw = tf.sysconfig.get_build_info()
    except Exception as exc:  # TF < 2.3 has no get_build_info
        raw = {}
        info["build_info_error"] = error_text(exc)
    for key, value in dict(raw).items():
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        info[str(key)] = str(value)
    with_cuda = bool(tf.test.is_built_with_cuda())
    return {
        "tf_version": str(getattr(tf, "__version__", "")),
        "built_with_cuda": with_cuda,
        "built_with_gpu_support": bool(tf.test.is_built_with_gpu_support()),
        "build_info": info,
        "detail": "TensorFlow %s, %s"
        % (
            getattr(tf, "__version__", "?"),
            "built with CUDA %s" % info.get("cuda_version", "?")
            if with_cuda
            else "built without CUDA",
        ),
    }


def step_gpus(tf, built_with_cuda):
    physical = tf.config.list_physical_devices("GPU")
    details = []
    for device in physical:
        entry = {"name": device.name}
        try:
            got = tf.config.experimental.get_device_details(device)
            entry["device_name"] = str(got.get("device_name", ""))
            cc = got.get("compute_capability")
            if cc:
                entry["compute_capability"] = "%s.%s" % tuple(cc)
        except Exception as exc:
            entry["error"] = error_text(exc)
        try:
            # Grow on demand: the user's own jobs may share this GPU.
            tf.config.experimental.set_memory_growth(device, True)
        except Exception as exc:
            entry["memory_growth_error"] = error_text(exc)
        details.append(entry)
    # Initialises the GPU runtime. Its INFO log line "Created device ... pci bus id: ..." (on
    # stderr) is what the runner matches against NVML.
    logical = tf.config.list_logical_devices("GPU")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    reason = ""
    if not logical:
        if not built_with_cuda:
            reason = "this TensorFlow is built without CUDA"
        elif visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
            reason = "CUDA_VISIBLE_DEVICES=%r hides every GPU" % visible
        elif physical:
            reason = (
                "TensorFlow sees %d GPU(s) but set none up (too old a compute capability, "
                "or a CUDA library failed to load: see stderr)" % len(physical)
            )
        else:
            reason = (
                "TensorFlow found no GPU (no NVIDIA driver / GPU, or a CUDA library "
                "failed to load: see stderr)"
            )
    return {
        "physical": len(physical),
        "logical": len(logical),
        "devices": details,
        "cuda_visible_devices": visible,
        "reason": reason,
        "detail": reason
        or "%d GPU(s): %s"
        % (len(logical), ", ".join(d.get("device_name") or d["name"] for d in details)),
    }


def step_matmul(tf, device, n, seconds):
    import numpy as np

    with tf.device(device):
        a = tf.random.uniform((n, n), minval=-1.0, maxval=1.0, seed=1, dtype=tf.float32)
        b = tf.random.uniform((n, n), minval=-1.0, maxval=1.0, seed=2, dtype=tf.float32)
        c = tf.matmul(a, b)  # warm-up: loads cuBLAS, picks the kernel
        float(tf.reduce_sum(c[:1, :1]))
        placement = str(c.device)
        iterations = 0
        batch = 1
        started = time.perf_counter()
        elapsed = 0.0
        while True:
            for _ in range(batch):
                c = tf.matmul(a, b)
            float(tf.reduce_sum(c[:1, :1]))  # waits for the queued work
            iterations += batch
            elapsed = time.perf_counter() - started
            if elapsed >= seconds or iterations >= 100000:
                break
            batch = min(batch * 2, 64)
    # The check: the first rows again, on the CPU, in float64 from the same inputs.
    rows = min(_CHECK_ROWS, n)
    a_host = a.numpy()[:rows].astype(np.float64)
    b_host = b.numpy().astype(np.float64)
    expected = a_host.dot(b_host)
    got = c.numpy()[:rows].astype(np.float64)
    scale = float(np.max(np.abs(expected))) or 1.0
    max_error = float(np.max(np.abs(got - expected)))
    # Loose enough for TF32 (the default for float32 matmul on Ampere and newer), tight
    # enough to catch garbage.
    tolerance = 1e-2 * scale
    matches = bool(math.isfinite(max_error) and max_error <= tolerance)
    wanted = device.rsplit("/", 1)[-1].upper()  # "GPU:0" / "CPU:0"
    on_device = placement.upper().endswith(wanted)
    gflops = 2.0 * n**3 * iterations / elapsed / 1e9 if elapsed > 0 else 0.0
    if not on_device:
        detail = "asked for %s, ran on %s" % (device, placement or "an unknown device")
    elif not matches:
        detail = "the %s result differs from the CPU's: max error %.3g > %.3g" % (
            wanted,
            max_error,
            tolerance,
        )
    else:
        detail = "%dx%d float32 on %s: %.1f GFLOP/s, matches the CPU" % (n, n, wanted, gflops)
    return {
        "ok": on_device and matches,
        "device": device,
        "placement": placement,
        "on_device": on_device,
        "matches": matches,
        "n": n,
        "iterations": iterations,
        "elapsed": elapsed,
        "gflops": gflops,
        "max_abs_error": max_error,
        "tolerance": tolerance,
        "detail": detail,
    }


def step_train(tf, device):
    import numpy as np

    try:
        keras = tf.keras
        keras.layers.Conv2D  # noqa: B018 - the lazy loader imports Keras here
    except (ImportError, AttributeError) as exc:
        # Not a GPU problem: TF >= 2.16 needs a separate `keras` (or tf-keras) install.
        return {
            "ok": True,
            "skipped": True,
            "detail": "skipped: Keras is not usable here (%s)" % error_text(exc),
        }
    with tf.device(device):
        model = keras.Sequential(
            [
                keras.Input(shape=(16, 16, 3)),
                keras.layers.Conv2D(8, 3, activation="relu"),
                keras.layers.Flatten(),
                keras.layers.Dense(10),
            ]
        )
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        rng = np.random.RandomState(0)
        x = rng.rand(64, 16, 16, 3).astype("float32")
        y = rng.randint(0, 10, size=(64,)).astype("int32")
        history = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    loss = float(history.history["loss"][-1])
    weight = model.weights[0]
    placement = str(getattr(getattr(weight, "value", weight), "device", "") or "")
    if not placement:
        placement = str(getattr(weight, "device", "") or "")
    wanted = device.rsplit("/", 1)[-1].upper()
    on_device = placement.upper().endswith(wanted) if placement else None
    ok = math.isfinite(loss) and on_device is not False
    if on_device is False:
        detail = "asked for %s, the weights live on %s" % (device, placement)
    elif not math.isfinite(loss):
        detail = "the training loss is %s" % loss
    else:
        detail = "Conv2D + Dense fit step on %s, loss %.3f" % (wanted, loss)
    return {
        "ok": ok,
        "device": device,
        "placement": placement,
        "loss": loss,
        "keras_version": str(getattr(keras, "__version__", "")),
        "detail": detail,
    }


def step_memory(tf):
    info = tf.config.experimental.get_memory_info("GPU:0")
    peak = float(info.get("peak", 0)) / (1024.0 * 1024.0)
    return {
        "peak_mib": peak,
        "current_mib": float(info.get("current", 0)) / (1024.0 * 1024.0),
        "detail": "peak %.0f MiB" % peak,
    }


def step_libraries():
    if sys.platform.startswith("linux"):
        found = _maps_libraries()
    elif sys.platform == "win32":
        found = _windows_modules()
    else:
        return {"ok": True, "libraries": [], "detail": "not read on %s" % sys.platform}
    return {"libraries": found, "detail": "%d CUDA / TensorFlow libraries loaded" % len(found)}


def _interesting(path):
    base = os.path.basename(path).lower()
    if not (".so" in base or base.endswith(".dll") or base.endswith(".pyd")):
        return False
    if any(word in base for word in _LIB_WORDS) or base.startswith(_TF_CORE):
        return True
    parts = path.replace("\\", "/").lower().split("/")
    return "nvidia" in parts[:-1]


def _maps_libraries():
    found = []
    seen = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.rstrip("\n").split(None, 5)
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            path = parts[5]
            if path not in seen and _interesting(path):
                seen.add(path)
                found.append(path)
    return found


def _windows_modules():
    import ctypes
    from ctypes import wintypes

    psapi = ctypes.WinDLL("psapi")
    kernel32 = ctypes.WinDLL("kernel32")
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    process = kernel32.GetCurrentProcess()
    needed = wintypes.DWORD()
    modules = (wintypes.HMODULE * 4096)()
    if not psapi.EnumProcessModules(process, modules, ctypes.sizeof(modules), ctypes.byref(needed)):
        raise OSError("EnumProcessModules failed: %d" % ctypes.get_last_error())
    count = min(needed.value // ctypes.sizeof(wintypes.HMODULE), len(modules))
    found = []
    buffer = ctypes.create_unicode_buffer(32768)
    for index in range(count):
        named = psapi.GetModuleFileNameExW(process, modules[index], buffer, len(buffer))
        if named and _interesting(buffer.value):
            found.append(buffer.value)
    return found


# --------------------------------------------------------------------------- main


def main(argv=None):
    parser = argparse.ArgumentParser(description="The GPU load test child.")
    parser.add_argument("--matmul-size", type=int, default=4096)
    parser.add_argument("--cpu-matmul-size", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args(argv)
    emit(
        {
            "event": "child",
            "pid": os.getpid(),
            "python": sys.executable,
            "version": ".".join(str(p) for p in sys.version_info[:3]),
            "platform": sys.platform,
        }
    )
    steps = Steps()
    holder = {}

    def do_import():
        import tensorflow as tf

        holder["tf"] = tf
        return {
            "module": str(getattr(tf, "__file__", "")),
            "version": str(getattr(tf, "__version__", "")),
            "detail": "TensorFlow %s" % getattr(tf, "__version__", "?"),
        }

    if not steps.run("import", do_import)["ok"]:
        emit({"event": "done", "gpu_used": False, "ok": False})
        return 1
    tf = holder["tf"]
    built = steps.run("build_info", step_build_info, tf)
    gpus = steps.run("gpus", step_gpus, tf, bool(built.get("built_with_cuda")))
    use_gpu = bool(gpus.get("logical"))
    if use_gpu:
        matmul = steps.run("matmul", step_matmul, tf, "/GPU:0", args.matmul_size, args.seconds)
        steps.run("train", step_train, tf, "/GPU:0")
        steps.run("memory", step_memory, tf)
    else:
        size = min(args.matmul_size, args.cpu_matmul_size)
        matmul = steps.run("cpu_matmul", step_matmul, tf, "/CPU:0", size, args.seconds)
        steps.run("train", step_train, tf, "/CPU:0")
    steps.run("libraries", step_libraries)
    gpu_used = bool(use_gpu and matmul.get("ok"))
    all_ok = all(record["ok"] for record in steps.results.values())
    emit({"event": "done", "gpu_used": gpu_used, "ok": all_ok})
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        code = 3
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: skip TensorFlow's atexit / static destructors, which can hang or crash at
    # interpreter shutdown on a half-broken stack and would blur what the test found.
    os._exit(code)
