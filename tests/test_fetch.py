"""fetch against a real HTTP server on 127.0.0.1 serving a real video file."""

from __future__ import annotations

import csv
import functools
import http.server
import shutil
import threading

import pytest

from flickermine.cli.main import main
from flickermine.demo import sample_video

pytest.importorskip("yt_dlp")


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    shutil.copy(sample_video(), root / "street.mp4")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def manifest(path):
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_fetch_downloads_records_and_skips(server, tmp_path, capsys):
    lst = tmp_path / "list.txt"
    lst.write_text(f"# videos\n{server}/street.mp4\n\n{server}/missing.mp4\n")
    out = tmp_path / "videos"
    assert main(["fetch", str(lst), "--out", str(out), "--retries", "1"]) == 1  # one failed
    rows = manifest(out / "manifest.csv")
    ok, bad = rows
    assert ok["status"] == "ok" and ok["id"] == "street" and ok["file"] == "street.mp4"
    assert (ok["frames"], ok["width"], ok["height"], ok["fps"]) == ("200", "768", "576", "10")
    assert (out / "street.mp4").read_bytes() == sample_video().read_bytes()
    assert bad["status"] == "failed" and "404" in bad["error"]
    assert "missing.mp4" in capsys.readouterr().err
    # A second run skips the finished video (its file is not touched) and retries the failure.
    mtime = (out / "street.mp4").stat().st_mtime_ns
    assert main(["fetch", str(lst), "--out", str(out), "--retries", "1"]) == 1
    assert (out / "street.mp4").stat().st_mtime_ns == mtime


def test_fetch_seed_layout(server, tmp_path):
    lst = tmp_path / "list.txt"
    lst.write_text(f"{server}/street.mp4\n")
    out = tmp_path / "videos"
    assert main(["fetch", str(lst), "--out", str(out), "--seed-layout", "--rate-limit", "50M"]) == 0
    assert (out / "video1" / "video1.mp4").is_file()
    assert (out / "mapping.csv").read_text().splitlines()[1].startswith("video1,street,http")
    assert manifest(out / "manifest.csv")[0]["file"] == "video1/video1.mp4"


def test_empty_list_is_a_clear_error(tmp_path, capsys):
    lst = tmp_path / "list.txt"
    lst.write_text("# nothing here\n\n")
    assert main(["fetch", str(lst), "--out", str(tmp_path / "v")]) == 2
    assert "list.txt: the URL list is empty" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--retries=-1", "retries: expected a number of attempts >= 0"),
        ("--sleep=nan", "sleep: expected seconds >= 0"),
        ("--sleep=-1", "sleep: expected seconds >= 0"),
        ("--rate-limit=0", "rate limit: expected at least 1 byte per second"),
    ],
)
def test_bad_download_options_are_refused_before_any_download(tmp_path, capsys, option, message):
    lst = tmp_path / "list.txt"
    lst.write_text("http://127.0.0.1:9/never-asked.mp4\n")
    assert main(["fetch", str(lst), "--out", str(tmp_path / "v"), option]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_url_lists_keep_fragments_drop_comments_and_repeats(tmp_path):
    from flickermine.errors import ConfigError
    from flickermine.fetch import read_list, read_manifest

    lst = tmp_path / "list.txt"
    lst.write_text(
        "\ufeff# clips\n"
        "dQw4w9WgXcQ   # a YouTube id\n"
        "http://h/a.mp4#t=10\n"
        "http://h/a.mp4#t=10\n"
        "  http://h/b.mp4 #second\n",
        encoding="utf-8",
    )
    assert read_list(lst) == [
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "http://h/a.mp4#t=10",
        "http://h/b.mp4",
    ]
    lst.write_bytes(b"http://h/\xff\xfe.mp4\n")
    with pytest.raises(ConfigError, match=r"list\.txt: cannot read the URL list"):
        read_list(lst)
    bad = tmp_path / "manifest.csv"
    bad.write_text("name,size\nx,1\n")
    with pytest.raises(ConfigError, match=r"manifest\.csv: not a fetch manifest"):
        read_manifest(bad)
