from __future__ import annotations

import numpy as np
import pytest

from flickermine.errors import DetectionFileError
from flickermine.io import load_detections, read_legacy, save_detections, write_legacy
from flickermine.structures import VideoDetections

# Written the way the seed's Caffe script wrote it: 1-based, w = x2 - x1 + 1, '%f'.
SEED_FILE = """FRAME NUMBER: 1
2
10.000000 20.000000 31.000000 41.000000 0.912345
100.500000 50.000000 11.000000 21.000000 0.850000
FRAME NUMBER: 2
0
FRAME NUMBER: 3
1
0.000000 0.000000 5.000000 5.000000 0.990000
"""


def sample() -> VideoDetections:
    return VideoDetections.from_rows(
        frame=[0, 0, 2, 5],
        xyxy=[[10, 20, 40, 60], [1.5, 2.25, 3.5, 9], [0, 0, 5, 5], [7, 7, 8, 8]],
        score=[0.9, 0.85, 0.99, 0.5],
        class_id=[1, 1, 1, 1],
        num_frames=8,
        meta={"video": "v.mp4", "fps": 25.0, "width": 64, "height": 48, "category": "dog"},
    )


def test_seed_written_file_loads_as_is(tmp_path):
    path = tmp_path / "video1.txt"
    path.write_text(SEED_FILE)
    d = read_legacy(path)
    assert d.num_frames == 3
    assert d.counts().tolist() == [2, 0, 1]
    # x2 = x + w: the seed's +1 is kept, not corrected.
    np.testing.assert_allclose(d.xyxy[0], [10, 20, 41, 61])
    np.testing.assert_allclose(d.score, [0.912345, 0.85, 0.99], rtol=1e-6)


def test_legacy_round_trip(tmp_path):
    d = sample()
    write_legacy(d, tmp_path / "d.txt")
    text = (tmp_path / "d.txt").read_text()
    assert text.startswith("FRAME NUMBER: 1\n2\n10.000000 20.000000 30.000000 40.000000 0.9")
    back = read_legacy(tmp_path / "d.txt")
    assert back.num_frames == 8
    np.testing.assert_allclose(back.xyxy, d.xyxy, atol=1e-5)
    np.testing.assert_allclose(back.score, d.score, atol=1e-6)


def test_native_round_trip_keeps_rows_and_metadata(tmp_path):
    d = sample()
    save_detections(d, tmp_path / "d.parquet")
    back = load_detections(tmp_path / "d.parquet")
    assert back.equals(d)
    assert back.meta["category"] == "dog" and back.meta["fps"] == 25.0
    assert back.num_frames == 8  # trailing empty frames survive through the metadata


def test_native_file_is_zstd_parquet_with_named_columns(tmp_path):
    import pyarrow.parquet as pq

    save_detections(sample(), tmp_path / "d.parquet")
    f = pq.ParquetFile(tmp_path / "d.parquet")
    assert f.schema_arrow.names == ["frame", "x1", "y1", "x2", "y2", "score", "label"]
    assert f.metadata.row_group(0).column(1).compression == "ZSTD"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "truncated inside a frame",
            "FRAME NUMBER: 1\n3\n1 1 2 2 0.9\n",
            r"d\.txt:3: .*expected 3",
        ),
        ("count missing", "FRAME NUMBER: 1\n1\n1 1 2 2 0.9\nFRAME NUMBER: 2\n", r"d\.txt:4:"),
        ("garbled count", "FRAME NUMBER: 1\nabc\n", r"d\.txt:2: expected the number of boxes"),
        ("garbled box", "FRAME NUMBER: 1\n2\n1 1 2 2 0.9\n1 1 x 2 0.9\n", r"d\.txt:4: expected 5"),
        ("nan box", "FRAME NUMBER: 1\n0\nFRAME NUMBER: 2\n1\n1 1 nan 2 0.9\n", "frame 2"),
        ("negative size", "FRAME NUMBER: 1\n1\n1 1 -4 2 0.9\n", "negative width"),
    ],
)
def test_bad_legacy_files_name_file_and_line(tmp_path, name, text, message):
    path = tmp_path / "d.txt"
    path.write_text(text)
    with pytest.raises(DetectionFileError, match=message):
        read_legacy(path)


def test_bad_native_files(tmp_path):
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(DetectionFileError, match="x.parquet: not a readable Parquet"):
        load_detections(tmp_path / "x.parquet")
    with pytest.raises(DetectionFileError, match="not found"):
        load_detections(tmp_path / "missing.parquet")
    with pytest.raises(DetectionFileError, match="unknown detection file type"):
        load_detections(tmp_path / "d.csv")


def test_native_reader_accepts_category_names_as_labels(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "frame": [0, 1],
            "x1": [0.0, 1.0],
            "y1": [0.0, 1.0],
            "x2": [2.0, 3.0],
            "y2": [2.0, 3.0],
            "score": [0.9, 0.8],
            "label": ["dog", "cat"],
        }
    )
    pq.write_table(table, tmp_path / "n.parquet")
    d = load_detections(tmp_path / "n.parquet")
    assert d.class_id.tolist() == [0, 1] and d.meta["categories"] == {"0": "dog", "1": "cat"}


def test_a_damaged_parquet_file_that_still_parses_is_refused_with_its_name(tmp_path):
    import pyarrow.parquet as pq

    from flickermine.io.native import META_KEY, to_table

    dets = VideoDetections.from_rows(
        frame=np.array([0, 2]), xyxy=np.array([[1, 2, 30, 40], [5, 6, 50, 60]]),
        score=np.array([0.9, 0.8]), num_frames=3,
    )  # fmt: skip
    table = to_table(dets)
    # Metadata bytes that are not UTF-8.
    bad_meta = tmp_path / "meta.parquet"
    pq.write_table(table.replace_schema_metadata({META_KEY: b"\xfa\xfb{"}), bad_meta)
    with pytest.raises(DetectionFileError, match=r"meta\.parquet"):
        load_detections(bad_meta)
    # A column name whose bytes were damaged (the schema stored only in the Parquet footer).
    renamed = table.rename_columns([*table.column_names[:-1], "zzzzzz"])
    bad_name = tmp_path / "name.parquet"
    pq.write_table(renamed, bad_name, store_schema=False)
    data = bad_name.read_bytes()
    assert b"zzzzzz" in data
    bad_name.write_bytes(data.replace(b"zzzzzz", b"\xa0\xa0\xa0\xa0\xa0\xa0"))
    with pytest.raises(DetectionFileError, match=r"name\.parquet"):
        load_detections(bad_name)


def test_an_absurd_frame_count_or_index_is_refused_not_allocated(tmp_path):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from flickermine.errors import InvalidDetectionsError

    values = {"x1": 1.0, "y1": 1.0, "x2": 5.0, "y2": 5.0, "score": 0.9}
    columns = {"frame": pa.array([0], pa.int32()), "label": pa.array([1], pa.int32())}
    columns.update({c: pa.array([v], pa.float32()) for c, v in values.items()})
    table = pa.table(columns).replace_schema_metadata(
        {b"flickermine": json.dumps({"num_frames": 10**12}).encode()}
    )
    pq.write_table(table, tmp_path / "damaged.parquet")
    with pytest.raises(DetectionFileError, match=r"damaged.parquet: num_frames: expected 0\.\."):
        load_detections(tmp_path / "damaged.parquet")  # was a MemoryError (7 TiB of offsets)
    with pytest.raises(InvalidDetectionsError, match="got 10,000,000,001"):
        VideoDetections.from_rows(frame=[10**10], xyxy=[[1, 1, 5, 5]], score=[0.9])
    assert VideoDetections.empty(3).num_frames == 3
