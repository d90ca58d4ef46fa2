"""The strace analyser: a streaming parser, process/fd state, and trace rules."""
