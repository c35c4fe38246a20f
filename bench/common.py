"""Shared helpers of the benchmarks: interleaved timing, peak memory, machine line.

The machine is shared and noisy, so every benchmark times its variants in one process, one
repetition of each in turn, and reports ratios of medians; absolute times of different runs
are not comparable.
"""

import os
import platform
import re
import statistics
import subprocess
import sys
import time

import tensorflow as tf

_KIB = 1024


def session_config():
    """The config a user's plain `tf.compat.v1.Session()` gets: the defaults."""
    return tf.compat.v1.ConfigProto()


def interleaved_medians(run_variants, repetitions, warmup_rounds=1):
    """Median seconds of each named callable, running one call of each in turn per repetition.

    The order rotates between repetitions, so no variant always runs right after the same
    one. `warmup_rounds` untimed rounds warm caches and lazy initialisation up.
    """
    for _ in range(warmup_rounds):
        for run in run_variants.values():
            run()
    names = list(run_variants)
    times = {name: [] for name in names}
    for repetition in range(repetitions):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            run_variants[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _status_kib(field):
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.M).group(1))


def reset_peak_rss():
    """Restarts the peak resident size (VmHWM) at the current one; returns the current bytes."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    return _status_kib("VmRSS") * _KIB


def peak_rss():
    """Peak resident bytes since the last `reset_peak_rss` (or since the process started)."""
    return _status_kib("VmHWM") * _KIB


# For a child that measures what one step needs: large blocks are mmapped, and TensorFlow's
# oneDNN allocator (which keeps freed memory for reuse) is off, so freed memory leaves the
# resident size at once and a peak counts only what the measured step itself held.
LIVE_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "TF_ENABLE_ONEDNN_OPTS": "0"}


def run_child(module, *args, env=None):
    """Runs `python -m module args` with extra `env` and returns its last stdout line: one
    child per memory measurement, so peaks of earlier measurements do not mask later ones."""
    child_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    result = subprocess.run([sys.executable, "-m", module, *map(str, args)], env=child_env,
                            capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def machine_line():
    """CPU model, cores, memory and TensorFlow version, for the results table."""
    with open("/proc/cpuinfo") as cpuinfo:
        model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo.read(), re.M)
    with open("/proc/meminfo") as meminfo:
        mem_gib = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read()).group(1)) / _KIB ** 2
    return (f"{model.group(1) if model else platform.processor()}, {os.cpu_count()} cores, "
            f"{mem_gib:.0f} GiB, Python {platform.python_version()}, TensorFlow {tf.__version__}")


def print_table(header, rows):
    """Prints rows as a Markdown table, ready for bench/README.md."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
