"""Notes true of every binary of a kind. Kept apart from rules.py so the main process of a parallel
audit can name them without importing the analysis (and numpy) before its workers fork."""

X86_NOTE = ("x86-64 code cannot show reliance on TSO: an acquire load and a plain load compile to the same "
            "mov, so SCL501 is not judged here (audit the aarch64 build, or the source)")
# the text output says these once per run, not once per binary
SHARED_NOTES = (X86_NOTE,)
