"""StreamingReader: invalid option values are refused with the parameter's name."""

import pyarrow as pa
import pytest

from assets_pkg.reader import ReaderError, ReaderOptionError, StreamingReader


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    return path


@pytest.mark.parametrize(
    "option, value",
    [
        ("file_format", "xml"),
        ("encoding", "no-such-codec"),
        ("chunk_size", 0),
        ("chunk_size", -5),
        ("chunk_size", 2.5),
        ("memory_limit_mb", 0),
        ("memory_limit_mb", -1),
        ("columns", "a"),
        ("columns", []),
        ("columns", ["a", "a"]),
        ("column_types", {"a": "int"}),
        ("column_types", {"a": pa.list_(pa.int64())}),
        ("skip_rows", -1),
        ("max_rows", -1),
        ("skip_empty", "yes"),
        ("strip_whitespace", 1),
        ("continue_on_error", None),
        ("error_threshold", 1.5),
        ("error_threshold", -0.1),
        ("report_progress", "no"),
        ("progress_interval", 0),
        ("progress_callback", "print"),
        ("delimiter", ";;"),
    ],
)
def test_invalid_option_names_the_parameter(csv_file, option, value):
    with pytest.raises(ReaderOptionError, match=rf"^invalid {option}:") as info:
        StreamingReader(csv_file, **{option: value})
    assert info.value.parameter == option
    assert isinstance(info.value, ReaderError) and isinstance(info.value, ValueError)


def test_file_path_must_be_a_path():
    with pytest.raises(ReaderOptionError, match="invalid file_path"):
        StreamingReader(None)


@pytest.mark.parametrize(
    "option, value",
    [("error_threshold", 0), ("error_threshold", 1), ("max_rows", None), ("max_rows", 0), ("skip_rows", 0),
     ("file_format", "csv.gz"), ("file_format", "CSV"), ("encoding", "latin-1"), ("memory_limit_mb", 0.5)],
)
def test_boundary_values_are_accepted(csv_file, option, value):
    StreamingReader(csv_file, **{option: value})
