"""
05_rl.py: RL fine-tuning with a KL penalty to the frozen pretrained policy on the diamond-pickaxe item curriculum (VPT §4.4, Fig. 7).

Not implemented yet: issue #7. Until then this script says so and exits with code 3, which `make toy` reads as
"the pipeline stops here"; it never pretends to have run.
"""

import sys

if __name__ == "__main__":
    print("05_rl.py: not yet implemented (issue #7); see README.md", file=sys.stderr)
    sys.exit(3)
