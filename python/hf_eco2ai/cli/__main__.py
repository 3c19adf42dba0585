import sys

from hf_eco2ai.cli.main import main

sys.exit(main())
