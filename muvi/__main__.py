import sys

from muvi.cli import main

sys.exit(main())
