import sys

from dd.cli import main

sys.exit(main())
