"""Source evidence for recorded runs: which line of the program made a syscall, and the join of a
recorded run with the static analysis of the same program (`record --check`)."""
