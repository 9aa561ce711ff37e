"""`python -m patternlang ...` (and `torchrun -m patternlang detect ...`): the `patternlang` command."""

from patternlang.cli import main

if __name__ == "__main__":
    main()
