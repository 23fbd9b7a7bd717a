"""Suite scheduling: the slowest files start first.

pytest-xdist (`--dist loadfile`, pytest.ini) hands files to the two workers in collection
order; started last, a file of several minutes leaves one worker idle at the end. The order
below is by measured wall time (longest first); files not listed follow in their usual
order. Ordering changes no test's outcome: every file is independent.

The report header names the CPU, its AVX-512/AMX flags and the oneDNN setting: float32
results differ in the last bits between oneDNN's and Eigen's kernels, so a failure report
has to say which ran (issue 33)."""

import os

from tf_translate.machine import cpu_description, flags_shown, onednn_default

SLOWEST_FIRST = ["test_distribute.py", "test_pix2pix.py", "test_unit.py", "test_torch_import.py", "test_drit.py",
                 "test_stargan.py", "test_tuigan.py", "test_nicegan_parity.py", "test_ugatit_parity.py",
                 "test_step_parity.py", "test_cut.py", "test_ugatit.py", "test_export_tflite.py", "test_nicegan.py",
                 "test_bad_input.py", "test_checkpoint_compat.py", "test_dunit.py", "test_box_io.py",
                 "test_dunit_paper.py", "test_init.py", "test_examples.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def onednn_line(flags, environ=os.environ):
    value = environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is None:
        return f"TF_ENABLE_ONEDNN_OPTS unset (TensorFlow's default for this CPU: {onednn_default(flags)})"
    return f"TF_ENABLE_ONEDNN_OPTS={value}"


def pytest_report_header(config):
    model, flags = cpu_description()
    return [f"cpu: {model}; {flags_shown(flags)}", f"onednn: {onednn_line(flags)}"]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The header again at the end: pytest.ini's -q hides the header, and a failure is read
    at the end of the log."""
    if config.get_verbosity() < 0:
        for line in pytest_report_header(config):
            terminalreporter.write_line(line)


# ---------------------------------------------------------------------------------------
# No silent skips: with TF_TRANSLATE_NO_SKIPS=1 (.ci/run sets it) a test that skips fails,
# unless tests/allowed_skips.txt names it with its reason. A missing extra (torch, a data
# set, a model file) would otherwise leave the suite green with its proofs untested. The
# reports are made in each pytest-xdist worker, which inherits the variable.

import fnmatch  # noqa: E402

import pytest  # noqa: E402

NO_SKIPS = "TF_TRANSLATE_NO_SKIPS"
ALLOWED_SKIPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "allowed_skips.txt")


def allowed_skips(path=ALLOWED_SKIPS):
    """{node id pattern (fnmatch, from the repository root): reason} of tests/allowed_skips.txt:
    one `pattern  # reason` a line; a line without a reason is an error."""
    allowed = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, _, reason = line.partition("#")
            if not reason.strip():
                raise ValueError(f"{path}:{number}: an allowed skip needs its reason after '#'")
            allowed[pattern.strip()] = reason.strip()
    return allowed


def skip_refused(nodeid):
    """True when skips must fail and `nodeid` is not on the allow-list."""
    if os.environ.get(NO_SKIPS) != "1":
        return False
    return not any(fnmatch.fnmatchcase(nodeid, pattern) for pattern in allowed_skips())


def skip_reason(report):
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and skip_refused(report.nodeid):
        report.outcome = "failed"
        report.longrepr = (f"skipped, and {NO_SKIPS}=1 refuses skips outside tests/allowed_skips.txt: "
                           f"{skip_reason(report)}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole module skipped at import (module-level importorskip) fails the same way."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and skip_refused(report.nodeid):
        report.outcome = "failed"
        report.longrepr = (f"module skipped, and {NO_SKIPS}=1 refuses skips outside tests/allowed_skips.txt: "
                           f"{skip_reason(report)}")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """PyTorch, where installed, on one thread for the whole session. The re-statements
    run networks of a few thousand weights, where torch's OpenMP threads wait on each
    other: beside the second xdist worker, or any other load on 2 cores, CUT's 9
    reference FastCUT steps took 37 s on two threads and 1.2 s on one (AMD EPYC, machine
    loaded by other jobs). Imported here (after collection, so after TensorFlow) because
    several files import torch inside a test. The committed trajectories are recorded on
    one thread too (tests/fixtures/record_trajectories.py)."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="module", autouse=True)
def release_memory_after_each_file():
    """After each test file: Keras' global state cleared, garbage collected and freed heap
    returned to the system. Without it an xdist worker kept every file's graphs and grew
    past 12 GB; the kernel's OOM killer took one on a 24 GB machine (2026-12-07)."""
    yield
    import gc

    import keras

    from tf_translate.memory import _malloc_trim

    keras.backend.clear_session()
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
