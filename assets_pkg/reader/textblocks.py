"""Read a text file (optionally gzip, any encoding) as UTF-8 blocks cut at line ends.

The parsers get whole lines only, and each block carries the physical line number of
its first line, which is how rejects get exact line numbers without the parser having
to count across blocks. Bytes read are the file's own bytes (compressed for gzip), for
progress.
"""

import codecs
import gzip
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from isal import igzip
from isal.igzip_lib import IsalError

from assets_pkg.reader.errors import ReaderError
from assets_pkg.reader.quotes import RecordScan
from assets_pkg.reader.sniff import open_binary

# What a corrupt gzip stream raises (isal's own error is not an OSError).
DECOMPRESS_ERRORS = (gzip.BadGzipFile, zlib.error, IsalError, OSError)
_UTF8_NAMES = {"utf-8", "utf8", "utf-8-sig", "utf_8", "utf_8_sig", "u8"}
_BOM = b"\xef\xbb\xbf"
# An object-store file is read in ranged GETs of at least this many bytes: few requests,
# and never the whole object at once.
REMOTE_BLOCK_BYTES = 8 << 20


@dataclass(frozen=True)
class TextBlock:
    data: bytearray  # UTF-8, whole records (the last line of the file may lack its newline)
    bytes_read: int  # file bytes consumed when the block was cut, for progress
    # From the CSV record scan (quotes.scan_records), 1-based lines within the block:
    spans: list = field(default_factory=list)  # (first, last) line of each multi-line record
    unterminated: list = field(default_factory=list)  # lines whose opening quote never closed
    bare_cr: list = field(default_factory=list)  # lines broken by a lone carriage return


def count_lines(data) -> int:
    return data.count(b"\n") + (0 if not data or data.endswith(b"\n") else 1)


class TextBlocks:
    """Sequential line-aligned reader. Use ``read_line`` for the header, then ``blocks``.

    Blocks do not count their lines here (that is a pass over every byte): the parser
    threads do it, and ``parsed.parse_in_order`` numbers the blocks in file order."""

    def __init__(self, path: Path, gzipped: bool, encoding: str, block_bytes: int):
        self.path = path
        # CSV: finds record ends (never inside a quoted value); set once the header is known.
        self.scan_records: Callable[[bytearray, bool], RecordScan] | None = None
        self.encoding = encoding
        self.block_bytes = block_bytes
        self._raw = open_binary(path, max(block_bytes, REMOTE_BLOCK_BYTES))
        self._stream = igzip.IGzipFile(fileobj=self._raw, mode="rb") if gzipped else self._raw
        # Transcode only when needed: UTF-8 input goes to Arrow as is (it validates).
        self._decoder = None
        if codecs.lookup(encoding).name not in {codecs.lookup(n).name for n in _UTF8_NAMES}:
            self._decoder = codecs.getincrementaldecoder(encoding)()
        self._buffer = b""
        self._eof = False
        self._started = False
        self.next_line = 1  # physical line number of the next line read_line returns
        self.text_bytes = 0  # decompressed bytes read so far, for error messages

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def bytes_read(self) -> int:
        return self._raw.tell()

    @contextmanager
    def _decompression_errors(self):
        """A truncated or corrupt gzip stream becomes a ReaderError naming the file."""
        try:
            yield
        except EOFError:
            raise ReaderError(
                f"{self.path}: gzip data is truncated (ended after {self.text_bytes:,} decompressed bytes); the file is incomplete"
            ) from None
        except DECOMPRESS_ERRORS as exc:
            raise ReaderError(f"{self.path}: cannot decompress (after {self.text_bytes:,} decompressed bytes): {exc}") from None

    def _read_more(self, size: int) -> bytes:
        """Next ``size``-ish bytes of UTF-8 text; b'' at the end of the file."""
        with self._decompression_errors():
            raw = self._stream.read(size)
        if not raw:
            self._eof = True
        self.text_bytes += len(raw)
        first = not self._started
        self._started = True
        if first and self._decoder is None and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if self._decoder is not None:
            try:
                text = self._decoder.decode(raw, final=self._eof)
            except UnicodeDecodeError as exc:
                raise ReaderError(
                    f"{self.path}: bytes after {self.text_bytes:,} decoded bytes are not valid {self.encoding} ({exc.reason}); "
                    "check the encoding option"
                ) from None
            if first:
                text = text.removeprefix("\ufeff")
            raw = text.encode("utf-8")
        return raw

    def read_line(self) -> bytes | None:
        """The next physical line without its line break, or None at the end of the file."""
        while b"\n" not in self._buffer and not self._eof:
            self._buffer += self._read_more(64 * 1024)
        if not self._buffer:
            return None
        cut = self._buffer.find(b"\n")
        if cut < 0:
            line, self._buffer = self._buffer, b""
        else:
            line, self._buffer = self._buffer[:cut], self._buffer[cut + 1 :]
        self.next_line += 1
        return line.removesuffix(b"\r")

    def _fill(self, buf: bytearray, start: int) -> int:
        """Read into ``buf[start:]`` until it is full or the file ends; return the end."""
        view = memoryview(buf)
        end = start
        try:
            with self._decompression_errors():
                while end < len(buf):
                    n = self._stream.readinto(view[end:])
                    if not n:
                        self._eof = True
                        break
                    end += n
                    self.text_bytes += n
        finally:
            view.release()
        return end

    def _next_data(self, carry: bytes) -> bytearray:
        """``carry`` followed by about ``block_bytes`` more bytes of UTF-8 text.

        UTF-8 input is read straight into one fresh buffer per block (no concatenation
        copies: the block goes to the parser thread as is); other encodings are decoded
        and re-encoded first."""
        if self._decoder is not None:
            return bytearray(carry + self._read_more(self.block_bytes))
        if not self._started:
            # The BOM check lives in _read_more: let it handle the first bytes.
            return bytearray(carry + self._read_more(self.block_bytes))
        buf = bytearray(len(carry) + self.block_bytes)
        buf[: len(carry)] = carry
        end = self._fill(buf, len(carry))
        del buf[end:]
        return buf

    def _scan(self, data: bytearray) -> RecordScan:
        if self.scan_records is not None:
            return self.scan_records(data, self._eof)
        return RecordScan(len(data) if self._eof else data.rfind(b"\n") + 1)

    def blocks(self) -> Iterator[TextBlock]:
        """Blocks of about ``block_bytes`` each, cut at record ends, until the end of the file."""
        carry = bytes(self._buffer)
        self._buffer = b""
        while True:
            data = self._next_data(carry) if not self._eof else bytearray(carry)
            scan = self._scan(data)
            while scan.cut == 0 and not self._eof:
                # One record longer than a block (or a quoted value still open): read on.
                data = self._next_data(bytes(data))
                scan = self._scan(data)
            if not data:
                return
            carry = bytes(data[scan.cut :])
            del data[scan.cut :]
            yield TextBlock(data, self.bytes_read(), scan.spans, scan.unterminated, scan.bare_cr)
            if self._eof and not carry:
                return
