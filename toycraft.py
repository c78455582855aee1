"""
toycraft.py: a small first-person Minecraft stand-in with MineRL's interface, scripted players and a toy internet of videos (the toy world every stage runs in).

Not implemented yet: issue #3. Until then this script says so and exits with code 3, which `make toy` reads as
"the pipeline stops here"; it never pretends to have run.
"""

import sys

if __name__ == "__main__":
    print("toycraft.py: not yet implemented (issue #3); see README.md", file=sys.stderr)
    sys.exit(3)
