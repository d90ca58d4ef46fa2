"""A file copied to the connection by a helper that gets both ends as parameters.

Seen in: rangehttpserver (copy_byte_range(infile, outfile, start, stop) reads 16 KiB at a time
from the served file and writes it to the handler's wfile; the handler's copyfile override calls
it with the file opened in send_head and self.wfile). os.sendfile(sock, fd, offset, count) does
the same without the copies.
"""
import io
from http.server import SimpleHTTPRequestHandler


def copy_span(infile, outfile, first, last, step=16 * 1024):
    infile.seek(first)
    while True:
        left = last + 1 - infile.tell()
        if left <= 0:
            break
        piece = infile.read(min(step, left))
        if not piece:
            break
        outfile.write(piece)  # expect: SCL401


class RangeHandler(SimpleHTTPRequestHandler):
    span = None

    def copyfile(self, source, outputfile):
        if self.span is None:
            return super().copyfile(source, outputfile)
        first, last = self.span
        copy_span(source, outputfile, first, last)


def spool_response(render, wfile):
    # look-alike: the body is rendered into memory (no file descriptor), then copied out
    body = io.BytesIO(render())
    while True:
        piece = body.read(20000)
        if not piece:
            break
        wfile.write(piece)
