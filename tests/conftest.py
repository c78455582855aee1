import importlib.util
import sys
from pathlib import Path

# the stage scripts and common.py live at the repository's top level, not in a package
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load_stage(name):
    """Stage scripts start with a digit, so they are loaded from their path rather than imported by name."""
    spec = importlib.util.spec_from_file_location(name.replace(".py", "").lstrip("0123456789_"), ROOT / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_configure(config):
    # make test runs everything but these; make test-slow runs only these, and CI runs both
    config.addinivalue_line("markers", "slow: a multi-process (torchrun) run, left to make test-slow")
