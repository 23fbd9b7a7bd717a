"""benchmarks/train_step.py's RESULTS table, built from fixed rows: no TensorFlow run, no torch."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_step_module():
    spec = importlib.util.spec_from_file_location("train_step", os.path.join(ROOT, "benchmarks", "train_step.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OURS = {"first_step_s": 41.25, "step_s": 0.6, "images_per_s": 1.67, "peak_rss_mb": 2047.6, "tf_version": "2.21.0",
        "keras_version": "3.15.0", "tf_threads": {"intra_op": 0, "inter_op": 0}}
TORCH = {"first_step_s": 1.1, "sec_per_iter_median": 0.4, "peak_rss_mb": 1024.4, "threads": 2,
         "torch_version": "2.13.0+cpu"}
ROWS = [{"model": "cyclegan", "size": 128, "batch": 1, "precision": "float32", "ours": OURS, "torch": TORCH},
        {"model": "dunit", "size": 128, "batch": 1, "precision": "float32", "ours": OURS, "torch": None},
        {"model": "cut", "size": 128, "batch": 1, "precision": "float32", "ours": {"error": "OOM"}, "torch": TORCH}]


def test_table_ratio_memory_and_missing_sides():
    module = train_step_module()
    lines = module.results_table(ROWS, ["header"]).splitlines()
    cells = lambda line: [c.strip() for c in line.strip("|").split("|")]
    assert lines[0] == "header"
    # 0.6 s ours / 0.4 s torch = 1.50; peak RSS rounded to MB.
    assert cells(lines[4]) == ["cyclegan", "128", "1", "float32", "41.2", "0.600", "0.400", "1.50", "2048", "1024"]
    assert cells(lines[5]) == ["dunit", "128", "1", "float32", "41.2", "0.600", "—", "—", "2048", "—"]
    assert cells(lines[6]) == ["cut", "128", "1", "float32", "error: OOM", "—", "0.400", "—", "—", "1024"]


def test_header_names_cpu_flags_versions_and_threads(tmp_path):
    module = train_step_module()
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9B45\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    cpu = module.cpu_description(str(cpuinfo))
    lines = module.header(cpu, "TF_ENABLE_ONEDNN_OPTS=1", ROWS, 2)
    assert lines[0].startswith("CPU: AMD EPYC 9B45; avx2=yes fma=no avx512f=yes avx512_vnni=no avx512_bf16=yes "
                               "avx512_fp16=no amx_tile=no amx_bf16=no;")
    assert lines[1] == "oneDNN: TF_ENABLE_ONEDNN_OPTS=1"
    assert lines[2] == "TensorFlow 2.21.0, Keras 3.15.0, PyTorch 2.13.0+cpu"
    assert "intra_op 0, inter_op 0" in lines[3] and lines[3].endswith("torch.set_num_threads(2)")
