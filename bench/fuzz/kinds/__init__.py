"""Fuzz input kinds: one module per kind of input the linter reads.

Each module defines:

    KIND = "strace"                 # the kind's name (the module's stem)
    SUBCOMMAND = ["trace"]          # argv after `python3 -m syscall_lint`, before the input paths
    def generate(rng, index, outdir) -> pathlib.Path
        # write input number `index` (deterministic from rng) into outdir; return its path
        # (a path may be a FIFO or a symlink to a device: non-regular inputs are part of the game)

and optionally:

    BATCH_SIZE = 100                # inputs per process
    def run_batch(paths, timeout) -> object with .problem (None when it held), .detail, .peak_rss_kb
        # for kinds that are not files handed to a subcommand (the language server's streams,
        # configuration files that each need their own run)
"""
