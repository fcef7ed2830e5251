"""Detect a file's format from its name and confirm it from its first bytes.

The name gives the expectation (``.csv``, ``.tsv``, ``.jsonl``/``.ndjson``, ``.parquet``,
each optionally ``.gz``); the content decides compression (gzip magic bytes) and must
agree with the format (``PAR1`` for parquet, ``{`` lines for JSONL, a delimiter for text).
A disagreement is an error rather than a guess, so a mislabelled file never loads as
garbage.
"""

import codecs
import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

from assets_pkg.reader.errors import ReaderError
from assets_pkg.storage import as_path, is_remote

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
_SAMPLE_BYTES = 64 * 1024
_NAME_FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
_DELIMITERS = {"csv": ",", "tsv": "\t"}


@dataclass(frozen=True)
class SniffedFormat:
    format: str  # csv | tsv | jsonl | parquet
    compression: str | None  # "gzip" or None
    delimiter: str | None  # text formats only


# Bytes one ranged GET fetches when a remote file is sniffed (a sample is 64 KiB): a read of
# the first bytes must not download the whole object.
SAMPLE_BLOCK_BYTES = 256 * 1024


def open_binary(path, block_bytes: int | None = None):
    """A binary, seekable file object for a local path or a remote one (an object-store
    file read by ranged GETs of ``block_bytes``, read ahead as it is consumed, so a stream
    never holds the whole object)."""
    if is_remote(path):
        options = {"block_size": block_bytes} if block_bytes else {}
        return path.open("rb", cache_type="readahead", **options)
    return open(path, "rb")


def format_from_name(path: Path) -> tuple[str | None, bool]:
    """(format implied by the file name or None, whether the name ends in .gz)."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] in (".gz", ".gzip")
    if gz:
        suffixes = suffixes[:-1]
    fmt = _NAME_FORMATS.get(suffixes[-1]) if suffixes else None
    return fmt, gz


def check_readable_file(path: Path) -> int:
    """Raise ReaderError for a missing path, a folder or an empty file; return the size."""
    if not path.exists():
        raise ReaderError(f"{path}: file not found (file_path)")
    if path.is_dir():
        raise ReaderError(f"{path}: is a directory, not a file (file_path)")
    size = path.stat().st_size
    if size == 0:
        raise ReaderError(f"{path}: file is empty (0 bytes): no header and no rows")
    return size


def _read_sample(path: Path, gzipped: bool) -> bytes:
    with open_binary(path, SAMPLE_BLOCK_BYTES) as raw:
        if not gzipped:
            return raw.read(_SAMPLE_BYTES)
        try:
            with gzip.GzipFile(fileobj=raw) as stream:
                return stream.read(_SAMPLE_BYTES)
        except EOFError:
            # A gzip file shorter than the sample that ends early: the reader reports the
            # truncation with its position; for sniffing, what was decoded is enough.
            raw.seek(0)
            decomp = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return decomp.decompress(raw.read(_SAMPLE_BYTES * 4), _SAMPLE_BYTES)
        except (OSError, zlib.error) as exc:
            raise ReaderError(f"{path}: not a valid gzip file: {exc}") from None


def looks_binary(sample: bytes) -> bool:
    """True for content no text format produces: many NUL or other control bytes. A few
    stray ones are a damaged text file, whose lines the reader reads or rejects one by one."""
    if not sample:
        return False
    head = sample[:4096]
    if head.count(0) > len(head) * 0.10:  # UTF-16/32 read as bytes, or binary
        return True
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13, 12))
    return len(head) >= 256 and controls > len(head) * 0.05


def _first_content_line(sample: bytes) -> bytes:
    for line in sample.split(b"\n"):
        if line.strip():
            return line.lstrip(b"\xef\xbb\xbf").strip()
    return b""


def _any_json_object_line(sample: bytes, lines: int = 20) -> bool:
    """A damaged first line does not make a JSON lines file something else: any of the
    first lines starting with '{' confirms the declared format (bad lines become rejects)."""
    if b"\n" not in sample:
        return True  # one line longer than the sample: nothing to judge it by
    content = [line.strip() for line in sample.split(b"\n")[:lines] if line.strip()]
    return any(line.startswith(b"{") for line in content)


def _text_format_from_content(first_line: bytes) -> str:
    if first_line.startswith(b"{"):
        return "jsonl"
    return "tsv" if first_line.count(b"\t") > first_line.count(b",") else "csv"


# encoding="auto": the encodings tried, in order, on the first 64 KiB
AUTO_ENCODINGS = ("utf-8", "cp1252", "latin-1")


def detect_encoding(file_path) -> str:
    """``encoding="auto"``: a UTF-16/32 or UTF-8 byte-order mark, else the first of UTF-8,
    Windows-1252 and Latin-1 that decodes the first 64 KiB (Latin-1 decodes anything, so a
    file is never refused for its encoding here; a later line that does not fit becomes an
    ``encoding_error`` reject)."""
    path = as_path(file_path)
    check_readable_file(path)
    with open_binary(path) as fh:
        gzipped = fh.read(4).startswith(GZIP_MAGIC)
    sample = _read_sample(path, gzipped)
    for bom, name in ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
                      (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if sample.startswith(bom):
            return name
    for name in AUTO_ENCODINGS:
        try:
            if name == "utf-8":  # a sample may end inside a multi-byte character: not final
                codecs.getincrementaldecoder(name)().decode(sample)
            else:
                sample.decode(name)
            return name
        except UnicodeDecodeError:
            continue
    return "latin-1"


def sniff_format(file_path, file_format: str = "auto", encoding: str = "utf-8", skip_lines: int = 0) -> SniffedFormat:
    """Return the format, compression and delimiter of ``file_path``.

    ``file_format="auto"`` takes the format from the name and checks it against the
    content; an explicit format (``csv``, ``tsv``, ``jsonl``/``ndjson``, ``parquet``, with
    or without ``.gz``) overrides the name but is still checked. Compression always comes
    from the gzip magic bytes. Raises ReaderError naming the file for missing, empty,
    binary or mislabelled input.
    """
    path = as_path(file_path)
    check_readable_file(path)
    with open_binary(path) as fh:
        head = fh.read(4)
    gzipped = head.startswith(GZIP_MAGIC)
    name_fmt, _ = format_from_name(path)
    wanted = file_format.lower().removesuffix(".gz")
    wanted = {"ndjson": "jsonl"}.get(wanted, wanted)
    expected = name_fmt if wanted == "auto" else wanted

    sample = _read_sample(path, gzipped)
    if sample.startswith(PARQUET_MAGIC):
        if expected not in (None, "parquet"):
            raise ReaderError(
                f"{path}: content is a Parquet file (starts with PAR1) but file_format says {expected}; "
                "rename it to .parquet or pass file_format='parquet'"
            )
        return SniffedFormat("parquet", "gzip" if gzipped else None, None)
    if expected == "parquet":
        raise ReaderError(f"{path}: expected a Parquet file (file_format / name) but it does not start with PAR1")
    if not sample:
        raise ReaderError(f"{path}: file is empty after decompression (or its gzip data is truncated): "
                          "no header and no rows")
    # Multi-byte encodings (utf-16/32) contain NUL bytes; judge their decoded text instead.
    text_sample = sample
    if encoding.lower().replace("_", "-") not in ("utf-8", "utf8", "utf-8-sig", "latin-1", "latin1", "iso-8859-1", "cp1252", "ascii"):
        try:
            text_sample = sample.decode(encoding, errors="ignore").encode("utf-8")
        except LookupError:
            pass
    if looks_binary(text_sample):
        raise ReaderError(
            f"{path}: looks like binary data, not CSV/TSV/JSONL text or Parquet "
            "(NUL or control bytes in the first 64 KiB)"
        )
    # skip_rows lines before the header (a preamble) say nothing about the format
    first_line = _first_content_line(b"\n".join(text_sample.split(b"\n")[skip_lines:]) if skip_lines else text_sample)
    content_fmt = _text_format_from_content(first_line)
    if expected is None:
        fmt = content_fmt
    elif (expected == "jsonl" and content_fmt != "jsonl" and wanted == "auto"
          and not _any_json_object_line(text_sample)):  # file_format="jsonl" is trusted: bad lines are rejects
        raise ReaderError(
            f"{path}: expected JSON lines (file_format / name) but the first line does not start with '{{': "
            f"{first_line[:80]!r}"
        )
    elif expected in ("csv", "tsv") and content_fmt == "jsonl":
        raise ReaderError(
            f"{path}: named/declared {expected} but the first line looks like JSON: {first_line[:80]!r}; "
            "pass file_format='jsonl'"
        )
    else:
        fmt = expected
    return SniffedFormat(fmt, "gzip" if gzipped else None, _DELIMITERS.get(fmt))
