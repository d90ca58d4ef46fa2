import sys

from syscall_lint.cli import main

sys.exit(main())
