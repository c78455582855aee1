"""
03_label.py: pseudo-label the clean web videos with the IDM (VPT §3.3).

Not implemented yet: issue #5. Until then this script says so and exits with code 3, which `make toy` reads as
"the pipeline stops here"; it never pretends to have run.
"""

import sys

if __name__ == "__main__":
    print("03_label.py: not yet implemented (issue #5); see README.md", file=sys.stderr)
    sys.exit(3)
