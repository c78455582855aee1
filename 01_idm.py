"""
01_idm.py: train the non-causal inverse dynamics model (IDM) on labelled contractor recordings (VPT §3.1, Fig. 2).

Not implemented yet: issue #4. Until then this script says so and exits with code 3, which `make toy` reads as
"the pipeline stops here"; it never pretends to have run.
"""

import sys

if __name__ == "__main__":
    print("01_idm.py: not yet implemented (issue #4); see README.md", file=sys.stderr)
    sys.exit(3)
