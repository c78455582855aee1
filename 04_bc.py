"""
04_bc.py: behavioural cloning of the causal foundation policy on the pseudo-labels; zero-shot and fine-tuned evaluation (VPT §4, Fig. 3-4, 8).

Not implemented yet: issue #6. Until then this script says so and exits with code 3, which `make toy` reads as
"the pipeline stops here"; it never pretends to have run.
"""

import sys

if __name__ == "__main__":
    print("04_bc.py: not yet implemented (issue #6); see README.md", file=sys.stderr)
    sys.exit(3)
