"""The CPU this runs on, as the figures and caches name it: its model and flags from
/proc/cpuinfo, and whether TensorFlow turns oneDNN on for it (float32 results differ in the
last bits between oneDNN's and Eigen's kernels). Read without importing TensorFlow."""

import os
import platform

# TensorFlow (tensorflow/core/util/util.cc, IsMKLEnabled) turns oneDNN on by default on Linux
# x86 when the CPU has any of these; TF_ENABLE_ONEDNN_OPTS overrides it.
ONEDNN_DEFAULT_FLAGS = frozenset({"avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16"})
# The flags a report shows beside a figure (the test report header, benchmarks' tables).
HEADER_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_description(cpuinfo="/proc/cpuinfo"):
    """(model name, set of flags) of the first CPU in /proc/cpuinfo; (platform's processor
    name, empty set) where there is none (macOS, Windows)."""
    model, flags = platform.processor() or platform.machine() or "unknown", set()
    try:
        with open(cpuinfo) as file:
            for line in file:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    return model, set(value.split())
    except OSError:
        pass
    return model, flags


def onednn_default(flags):
    """"on" or "off": TensorFlow's oneDNN default for a CPU with these flags."""
    return "on" if platform.system() == "Linux" and set(flags) & ONEDNN_DEFAULT_FLAGS else "off"


def onednn_setting(flags, environ=os.environ):
    """"on" or "off": TF_ENABLE_ONEDNN_OPTS, else TensorFlow's default for this CPU."""
    value = environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower()
    if value in ("0", "false"):
        return "off"
    if value in ("1", "true"):
        return "on"
    return onednn_default(flags)


def flags_shown(flags):
    """"avx2=yes fma=yes avx512f=no ...": HEADER_FLAGS as a report line shows them."""
    return " ".join(f"{flag}={'yes' if flag in flags else 'no'}" for flag in HEADER_FLAGS)
