import sys
from pathlib import Path

# the stage scripts and common.py live at the repository's top level, not in a package
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
