"""``python -m zpdist.cli``: the same as the ``zpdist`` command."""

import sys

from zpdist.cli.main import main

sys.exit(main())
