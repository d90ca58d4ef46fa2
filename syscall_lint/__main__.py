from syscall_lint.cli import run

run()
