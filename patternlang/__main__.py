"""`python -m patternlang ...` (and `torchrun -m patternlang detect ...`): the `patternlang` command."""

from patternlang.cli import run

if __name__ == "__main__":
    run()
