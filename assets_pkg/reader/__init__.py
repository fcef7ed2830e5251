"""Streaming reader for CSV/TSV/JSONL/Parquet (optionally gzip): Arrow batches in bounded
memory, a rejects table instead of silently dropped rows, stats and progress.

See docs/foundation.md ("Streaming reader") for the API other packages code against.

Behaviour worth knowing (each is tested in assets_pkg_tests/test_reader_*.py):

- Format: from the name (.csv .tsv .tab .jsonl .ndjson .parquet, + .gz) or
  ``file_format``, always checked against the content (gzip magic bytes, ``PAR1``,
  ``{`` lines, delimiter); gzip is detected by content even without ``.gz``. A name
  and content that disagree, random binary, a missing path, a folder or a 0-byte file
  raise ReaderError. A header-only file gives zero rows and its schema.
- Types: ``column_types`` wins; other columns are inferred by Arrow from the first
  parse block, up to 2 MiB (all-empty or invalid-UTF-8 columns become string). The
  schema is then fixed for the whole file: a later value that does not convert to it is a
  ``type_error`` reject (the message names the column and type) - declare
  ``column_types`` when the start of a file is not representative. JSONL: the schema
  comes from the first block; a field first seen later is a ``schema_error`` reject
  unless ``columns=`` is given. Empty fields are null (only the empty string; "NA" etc.
  stay text or fail their type).
- Rejects: ``line`` is the 1-based physical line (header = line 1; for Parquet the
  1-based row); a quoted CSV value spanning lines reports the line its record starts
  on. Kinds: ragged_row, type_error, encoding_error (invalid UTF-8 under utf-8: that
  record is rejected, the read goes on), unterminated_quote, line_break (a lone ``\r``
  inside an unquoted line), json_error, schema_error. ``raw`` holds the record's text
  (cut at 10,000 characters). A rejected row is removed, never nulled.
- Quotes (quotes.py): a quoted value may span lines only when it closes as RFC 4180
  says (a quote followed by the delimiter or the line end) within ``max_quoted_lines``
  lines (default 1000), before the end of the file, in a record with the header's
  number of fields. Otherwise the line with the opening quote is an
  ``unterminated_quote`` reject and reading resumes on the next line: a stray quote
  costs one line, never the rest of the file.
- Lines: every physical line read is in exactly one of header, skipped (``skip_rows``,
  blank lines), rejected (every line of a rejected record) and row lines;
  ``stats.line_counts()`` reports them and a read whose lines do not add up stops with
  AccountingError rather than return rows that may be misplaced.
- ``error_threshold``: rejected lines / (row lines + rejected lines) is checked after
  each block once 1,000 lines were seen and at the end; above it the read stops with
  RejectThresholdExceeded (chunks already yielded stay yielded: write atomically).
- ``skip_rows`` skips that many lines before the header (a preamble; JSONL/Parquet: the
  first lines or rows); ``skip_data_rows`` skips lines right after the header. Skipped
  lines keep their physical numbers. ``skip_empty`` (default) skips rows whose selected
  columns are all empty, blank lines included (CSV/TSV; JSONL always skips blank lines);
  ``False`` keeps them as all-null rows. ``strip_whitespace`` (default on) strips header
  names and values; text columns are trimmed after the typed parse, a number with spaces
  around it goes through the text path. ``encoding="auto"``: a byte-order mark, else the
  first of UTF-8, Windows-1252, Latin-1 that decodes the first 64 KiB.
- Memory: a budget too small for one chunk of ``chunk_size`` rows (at the average size of
  the first 1,000+ rows) stops the read naming both options; each chunk reports
  ``memory_bytes``; ``stats.error_chunk_ids`` lists the chunks that had rejects.
- Memory: ``memory_limit_mb`` sets the parse block (1/16 of it, 256 KiB..2 MiB); three
  blocks are in flight. Blocks are joined into chunks of ``chunk_size`` rows (the last
  one shorter), cut earlier when a chunk would pass 1/8 of ``memory_limit_mb`` (at
  least 4 blocks) of Arrow data. Parquet is read by batches of ``chunk_size`` rows;
  gzipped Parquet is decompressed to a temp file first (it needs random access).
- Progress: events every ``progress_interval`` s to ``progress_callback`` (or, with
  ``report_progress=True``, a bar on a terminal / log lines), plus a final one.
- ``delimiter=`` (not in the original option list) overrides the sniffed delimiter,
  e.g. ``;`` files, which are otherwise refused with a message suggesting it.
"""

from assets_pkg.reader.errors import ReaderError, ReaderOptionError, RejectedRowError, RejectThresholdExceeded
from assets_pkg.reader.progress import ProgressEvent, format_progress
from assets_pkg.reader.rejects import REJECTS_SCHEMA
from assets_pkg.reader.sniff import SniffedFormat, sniff_format
from assets_pkg.reader.stats import Chunk, ReadStats
from assets_pkg.reader.streaming import StreamingReader

__all__ = [
    "REJECTS_SCHEMA",
    "Chunk",
    "ProgressEvent",
    "ReadStats",
    "ReaderError",
    "ReaderOptionError",
    "RejectThresholdExceeded",
    "RejectedRowError",
    "SniffedFormat",
    "StreamingReader",
    "format_progress",
    "sniff_format",
]
