"""`python -m zerodl.cli ...`: the `zerodl` command, without the installed script."""
from . import main

if __name__ == "__main__":
    main()
