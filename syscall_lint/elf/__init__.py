"""The ELF analyser: import tables and dynamic sections (pyelftools), call sites and aarch64
memory-ordering checks (capstone). It never executes what it reads."""
