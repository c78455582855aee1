"""
02_filter.py: train a clean/unclean frame classifier and cut the web videos down to clean segments (VPT §3.2).

Not implemented yet: issue #5. Until then this script says so and exits with code 3, which `make toy` reads as
"the pipeline stops here"; it never pretends to have run.
"""

import sys

if __name__ == "__main__":
    print("02_filter.py: not yet implemented (issue #5); see README.md", file=sys.stderr)
    sys.exit(3)
