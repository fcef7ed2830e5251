"""Read a text file (optionally gzip, any encoding) as UTF-8 blocks cut at line ends.

The parsers get whole lines only, and each block carries the physical line number of
its first line, which is how rejects get exact line numbers without the parser having
to count across blocks. Bytes read are the file's own bytes (compressed for gzip), for
progress.
"""

import codecs
import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from isal import igzip

from assets_pkg.reader.errors import ReaderError

_UTF8_NAMES = {"utf-8", "utf8", "utf-8-sig", "utf_8", "utf_8_sig", "u8"}
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class TextBlock:
    first_line: int  # physical line number (1-based) of the block's first line
    data: bytes  # UTF-8, whole lines (the last line of the file may lack its newline)
    bytes_read: int  # file bytes consumed when the block was cut, for progress
    line_count: int  # lines in ``data``


class TextBlocks:
    """Sequential line-aligned reader. Use ``read_line`` for the header, then ``blocks``."""

    def __init__(self, path: Path, gzipped: bool, encoding: str, block_bytes: int):
        self.path = path
        self.encoding = encoding
        self.block_bytes = block_bytes
        self._raw = open(path, "rb")
        self._stream = igzip.IGzipFile(fileobj=self._raw, mode="rb") if gzipped else self._raw
        # Transcode only when needed: UTF-8 input goes to Arrow as is (it validates).
        self._decoder = None
        if codecs.lookup(encoding).name not in {codecs.lookup(n).name for n in _UTF8_NAMES}:
            self._decoder = codecs.getincrementaldecoder(encoding)()
        self._buffer = b""
        self._eof = False
        self._started = False
        self.next_line = 1  # physical line number of the first line in the buffer

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def bytes_read(self) -> int:
        return self._raw.tell()

    def _read_more(self, size: int) -> bytes:
        """Next ``size``-ish bytes of UTF-8 text; b'' at the end of the file."""
        try:
            raw = self._stream.read(size)
        except EOFError:
            raise ReaderError(
                f"{self.path}: gzip data is truncated (ended after line ~{self.next_line}); the file is incomplete"
            ) from None
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise ReaderError(f"{self.path}: cannot decompress (near line {self.next_line}): {exc}") from None
        if not raw:
            self._eof = True
        first = not self._started
        self._started = True
        if first and self._decoder is None and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if self._decoder is not None:
            try:
                text = self._decoder.decode(raw, final=self._eof)
            except UnicodeDecodeError as exc:
                raise ReaderError(
                    f"{self.path}: bytes near line {self.next_line} are not valid {self.encoding} ({exc.reason}); "
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

    def blocks(self) -> Iterator[TextBlock]:
        """Line-aligned blocks of about ``block_bytes`` each, until the end of the file."""
        pending = [self._buffer] if self._buffer else []
        pending_size = len(self._buffer)
        self._buffer = b""
        while True:
            if not self._eof:
                more = self._read_more(self.block_bytes)
                if more:
                    pending.append(more)
                    pending_size += len(more)
            if not pending:
                return
            if pending_size < self.block_bytes and not self._eof:
                continue
            data = b"".join(pending) if len(pending) > 1 else pending[0]
            cut = len(data) if self._eof else data.rfind(b"\n") + 1
            if cut == 0:  # one line longer than a block: keep reading until it ends
                pending, pending_size = [data], len(data)
                continue
            block, rest = data[:cut], data[cut:]
            pending = [rest] if rest else []
            pending_size = len(rest)
            lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            yield TextBlock(self.next_line, block, self.bytes_read(), lines)
            self.next_line += lines
            if self._eof and not pending:
                return
