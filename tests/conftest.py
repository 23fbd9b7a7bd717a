"""Suite scheduling: the slowest files start first.

pytest-xdist (`--dist loadfile`, pytest.ini) hands files to the two workers in collection
order; started last, a file of several minutes leaves one worker idle at the end. The order
below is by measured wall time (longest first); files not listed follow in their usual
order. Ordering changes no test's outcome: every file is independent."""

SLOWEST_FIRST = ["test_distribute.py", "test_pix2pix.py", "test_unit.py", "test_torch_import.py", "test_drit.py",
                 "test_stargan.py", "test_tuigan.py", "test_nicegan_parity.py", "test_ugatit_parity.py",
                 "test_step_parity.py", "test_ugatit.py", "test_export_tflite.py", "test_nicegan.py",
                 "test_bad_input.py", "test_examples.py"]


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
