"""``python -m agentstream.cli``: the same as the ``agentstream`` command."""

import sys

from agentstream.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
