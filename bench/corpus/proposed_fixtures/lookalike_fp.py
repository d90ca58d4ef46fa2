"""Look-alikes that must stay quiet: pid files, a rollback rename, a fork-request server.

Seen in: gunicorn pidfile, portalocker pid lock, filelock head file, dulwich Windows rename
rollback, multiprocessing.forkserver.  (Whether a pid/lock file should be exempt is a policy
question for the rule owners; see FINDINGS.md.)
"""
import os
import tempfile


def write_pidfile(path):
    fd, scratch = tempfile.mkstemp(dir=os.path.dirname(path) or ".")
    os.write(fd, b"%d\n" % os.getpid())
    os.close(fd)
    os.rename(scratch, path)


def swap_with_rollback(src, dst, backup):
    os.rename(dst, backup)
    try:
        os.rename(src, dst)
    except OSError:
        os.rename(backup, dst)
        raise
    os.remove(backup)


def fork_on_request(listener):
    while True:
        conn, _ = listener.accept()
        with conn:
            if conn.recv(1) == b"F":
                pid = os.fork()
                if pid == 0:
                    os._exit(0)
                conn.sendall(pid.to_bytes(4, "little"))
