import sys

from cli.main import main

# guarded: worker processes started with "spawn" import the main module again
if __name__ == "__main__":
    sys.exit(main())
