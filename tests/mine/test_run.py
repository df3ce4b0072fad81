"""mine_video / mine_many: outputs on disk, folders, resume, bad input."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from flickermine.decoding import decode_in_process, process_decoding_available
from flickermine.errors import ConfigError, InvalidDetectionsError, OutputExistsError
from flickermine.io import save_detections, write_legacy
from flickermine.mine import (
    HardPositiveParams,
    MinerParams,
    find_jobs,
    iter_flickers,
    mine_many,
    mine_video,
)
from flickermine.mine.params import DEFAULT_PRESET
from flickermine.structures import VideoDetections
from flickermine.video import VideoReader

from factories import Sprite, detections, render_frames, sprite_rows, texture, write_video

N = 20
FALSE_BOX = (180.0, 60.0, 228.0, 124.0)


@pytest.fixture
def scene(tmp_path):
    """A 20-frame video with a real walking object and a flicker in frame 9 (0-based)."""
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
    video = write_video(tmp_path / "walk.mp4", render_frames(N, sprites=[a]))
    dets = detections([*sprite_rows(a, range(N)), (9, *FALSE_BOX, 0.9)], N)
    det_path = tmp_path / "walk.parquet"
    save_detections(dets, det_path)
    return video, det_path, dets


def test_outputs_follow_the_seed_layout(scene, tmp_path):
    video, det_path, _ = scene
    out = tmp_path / "out"
    s = mine_video(video, det_path, out)
    assert (s["hard_negatives"], s["frames_written"], s["frames"]) == (1, 1, N)
    lines = (out / "walk.txt").read_text().splitlines()
    assert lines[0] == "walk/frame10.jpg" and lines[1] == "2"  # 1-based frame name
    assert lines[2].split()[-1] == "1" and lines[3].split() == [
        "180.000000", "60.000000", "48.000000", "64.000000", "0",
    ]  # fmt: skip
    frame = cv2.imread(str(out / "frames" / "walk" / "frame10.jpg"))
    vis = cv2.imread(str(out / "visualizations" / "walk" / "frame10.jpg"))
    assert frame.shape == vis.shape == (240, 320, 3)
    # The hard negative is drawn red on the picture (B, G, R) at its left edge.
    b, g, r = vis[90, 180].astype(int)
    assert r > 200 and g < 60 and b < 60
    assert (abs(frame.astype(int) - vis.astype(int)).sum(axis=2) > 60).any()


def test_verdicts_record_every_valid_detection_with_reason(scene, tmp_path):
    video, det_path, _ = scene
    mine_video(video, det_path, tmp_path / "out")
    t = pq.read_table(tmp_path / "out" / "walk.verdicts.parquet").to_pylist()
    assert len(t) == N - 10 + 1  # one object in frames 5..14, plus the flicker
    hn = [r for r in t if r["verdict"] == "hard_negative"]
    assert len(hn) == 1 and hn[0]["frame"] == 9 and hn[0]["det"] == 1
    # frame10.jpg (1-based, as pictures are named) is the row with frame_number 10.
    assert all(r["frame_number"] == r["frame"] + 1 for r in t) and hn[0]["frame_number"] == 10
    assert hn[0]["reason"].startswith("hard negative") and hn[0]["before"] == "none"
    assert {r["reason"] for r in t if r["verdict"] == "pseudo_positive"} == {
        "supported at t-1 by overlap"
    }
    summary = json.loads((tmp_path / "out" / "walk.json").read_text())
    recorded = dict(summary["params"])
    assert recorded.pop("hard_positives") is None
    assert recorded == MinerParams.preset(DEFAULT_PRESET).to_dict()  # the default preset


@pytest.mark.parametrize("decoder", ["process", "thread"])
def test_more_detection_frames_than_video_frames_names_both(scene, tmp_path, decoder):
    video, _, dets = scene
    longer = dets.with_num_frames(N + 5)
    with pytest.raises(InvalidDetectionsError, match=f"{N + 5} frames.*only {N} frames"):
        mine_video(video, longer, tmp_path / "out", decoder=decoder)
    # The decoder process, started before the detections were checked, is gone.
    assert not mp.active_children()


def test_short_legacy_file_is_refused_unless_partial(scene, tmp_path):
    video, _, dets = scene
    short = dets.select(dets.frame < 15).with_num_frames(15)
    write_legacy(short, tmp_path / "short.txt")
    with pytest.raises(InvalidDetectionsError, match="covers only 15 of the 20 frames"):
        mine_video(video, tmp_path / "short.txt", tmp_path / "out")
    s = mine_video(video, tmp_path / "short.txt", tmp_path / "out2", partial=True)
    assert s["frames"] == 15 and s["hard_negatives"] == 1


def test_video_that_stops_decoding_early_is_reported(scene, tmp_path):
    _, _, dets = scene
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
    avi = write_video(tmp_path / "cut.avi", render_frames(N, sprites=[a]))
    data = avi.read_bytes()
    avi.write_bytes(data[: len(data) * 2 // 3])  # the header still promises 20 frames
    from flickermine.video import VideoReader

    assert VideoReader(avi).num_frames == N
    with pytest.raises(InvalidDetectionsError, match=r"only \d+ frames could be decoded"):
        mine_video(avi, dets, tmp_path / "out")
    assert not (tmp_path / "out" / "cut.json").exists()
    # Complete outputs or none: not the pictures of the frames judged before decoding stopped,
    # nor the empty folders they would have gone in.
    assert [p.name for p in (tmp_path / "out").rglob("*")] == []


def test_no_detections_is_an_empty_result(scene, tmp_path):
    video, _, _ = scene
    s = mine_video(video, VideoDetections.empty(N), tmp_path / "out")
    assert s["hard_negatives"] == 0 and s["valid_detections"] == 0
    assert (tmp_path / "out" / "walk.txt").read_text() == ""


def test_existing_outputs_are_not_overwritten_silently(scene, tmp_path):
    video, det_path, _ = scene
    mine_video(video, det_path, tmp_path / "out")
    with pytest.raises(OutputExistsError, match="walk"):
        mine_video(video, det_path, tmp_path / "out")
    mine_video(video, det_path, tmp_path / "out", overwrite=True)


def test_folders_seed_layout_and_resume(scene, tmp_path):
    video, det_path, _ = scene
    vids, dets = tmp_path / "videos", tmp_path / "dets"
    (vids / "video1").mkdir(parents=True)
    dets.mkdir()
    shutil.copy(video, vids / "video1" / "video1.mp4")  # the seed's videoN/videoN layout
    shutil.copy(video, vids / "clip2.mp4")
    shutil.copy(det_path, dets / "video1.parquet")
    shutil.copy(det_path, dets / "clip2.parquet")
    jobs = find_jobs(vids, dets)
    assert sorted(j.stem for j in jobs) == ["clip2", "video1"]
    out = tmp_path / "out"
    first = mine_many(jobs, out, workers=2)
    assert all(o.summary and o.summary["hard_negatives"] == 1 for o in first)
    again = mine_many(jobs, out, resume=True)
    assert all(o.skipped for o in again)
    # Other parameters: the finished videos are redone.
    redo = mine_many(jobs, out, MinerParams(window=3), resume=True)
    assert not any(o.skipped for o in redo) and all(o.summary for o in redo)


def copies_of(scene, tmp_path, n):
    """A folder of ``n`` copies of the scene's video (v0.mp4 ...) and one of their detections."""
    video, det_path, _ = scene
    vids, dets = tmp_path / "videos", tmp_path / "dets"
    vids.mkdir()
    dets.mkdir()
    for k in range(n):
        shutil.copy(video, vids / f"v{k}.mp4")
        shutil.copy(det_path, dets / f"v{k}.parquet")
    return vids, dets


CTRL_C_SCRIPT = """
import os, signal, sys
from pathlib import Path
from flickermine.mine import find_jobs, mine_many
def ctrl_c(outcome):  # what a terminal does: SIGINT to the whole process group
    os.killpg(os.getpgid(0), signal.SIGINT)
if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignoring it
    try:
        mine_many(find_jobs(Path(sys.argv[1]), Path(sys.argv[2])), sys.argv[3], workers=2,
                  on_done=ctrl_c, decoder=sys.argv[4])
    except KeyboardInterrupt:
        sys.exit(130)
"""


# "process": each worker decodes in a child of its own (the default where the job has 2 CPUs
# per worker).
@pytest.mark.parametrize("decoder", ["auto", "process"])
def test_ctrl_c_stops_a_parallel_run_without_starting_more_videos(scene, tmp_path, decoder):
    from tests_helpers import finished_videos

    vids, dets = copies_of(scene, tmp_path, 12)
    (tmp_path / "run.py").write_text(CTRL_C_SCRIPT)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "run.py"), str(vids), str(dets), str(out), decoder],
        capture_output=True, text=True, timeout=120, start_new_session=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 130, proc.stderr[-2000:]
    finished = finished_videos(out)  # and no outputs of unfinished videos
    assert 1 <= len(finished) <= 4  # the first, and at most those already being mined
    outcomes = mine_many(find_jobs(vids, dets), out, resume=True)  # the rest, later
    assert sum(o.skipped for o in outcomes) == len(finished)
    assert all(o.skipped or o.summary for o in outcomes)


KILLED_SCRIPT = """
import multiprocessing as mp, os, signal, sys, time
from pathlib import Path
from flickermine.mine import find_jobs, mine_many
def children(pids):
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) in pids:
                    found.append(int(name))
        except (OSError, ValueError, IndexError):
            pass
    return found
def killed(outcome):  # the parent dies outright (SIGKILL, out of memory) half way
    workers = [p.pid for p in mp.active_children()]
    decoders, deadline = [], time.monotonic() + (10 if sys.argv[4] == "process" else 0)
    while not decoders and time.monotonic() < deadline:  # a worker's decoder child, if any
        decoders = children(workers)
    print(*workers, *decoders, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
if __name__ == "__main__":
    mine_many(find_jobs(Path(sys.argv[1]), Path(sys.argv[2])), sys.argv[3], workers=2,
              on_done=killed, decoder=sys.argv[4])
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("decoder", ["auto", "process"])
def test_workers_of_a_killed_parent_stop_and_clean_up(scene, tmp_path, decoder):
    from tests_helpers import children_of_a_killed_script, finished_videos, still_running

    vids, dets = copies_of(scene, tmp_path, 12)
    (tmp_path / "run.py").write_text(KILLED_SCRIPT)
    out = tmp_path / "out"
    argv = [sys.executable, str(tmp_path / "run.py"), str(vids), str(dets), str(out), decoder]
    processes = children_of_a_killed_script(argv)
    # The two workers, and with "process" the decoder children they had at the time.
    assert len(processes) >= 3 if decoder == "process" else len(processes) == 2
    assert still_running(processes, timeout=15) == []
    assert finished_videos(out)


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="reads /proc")
def test_a_worker_killed_while_mining_fails_only_its_video(scene, tmp_path):
    import multiprocessing as mp
    import threading
    import time

    from tests_helpers import finished_videos

    vids, dets = copies_of(scene, tmp_path, 6)
    # v3 is longer, so that its worker can be caught mining it.
    a = Sprite(texture(7, 64, 48), {t: (100 + (t % 40), 80) for t in range(400)})
    write_video(vids / "v3.mp4", render_frames(400, sprites=[a]))
    save_detections(detections(sprite_rows(a, range(400)), 400), dets / "v3.parquet")
    killed: list[int] = []

    def kill_the_worker_reading_v3() -> None:  # as the out-of-memory killer would
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for child in mp.active_children():
                with contextlib.suppress(OSError):
                    fds = Path(f"/proc/{child.pid}/fd")
                    if any(os.readlink(fd).endswith("v3.mp4") for fd in fds.iterdir()):
                        os.kill(child.pid, signal.SIGKILL)
                        killed.append(child.pid)
                        return
            time.sleep(0.002)

    killer = threading.Thread(target=kill_the_worker_reading_v3)
    killer.start()
    out = tmp_path / "out"
    outcomes = mine_many(find_jobs(vids, dets), out, workers=2)
    killer.join()
    assert killed
    by_stem = {o.job.stem: o for o in outcomes}
    assert sorted(by_stem) == [f"v{k}" for k in range(6)]
    assert by_stem["v3"].error and "died (killed by SIGKILL, out of memory?)" in by_stem["v3"].error
    assert all(o.summary for stem, o in by_stem.items() if stem != "v3"), outcomes
    assert finished_videos(out) == [f"v{k}" for k in range(6) if k != 3]


def test_folder_with_a_video_lacking_detections_is_refused(scene, tmp_path):
    video, det_path, _ = scene
    vids, dets = tmp_path / "videos", tmp_path / "dets"
    vids.mkdir()
    dets.mkdir()
    shutil.copy(video, vids / "a.mp4")
    shutil.copy(video, vids / "b.mp4")
    shutil.copy(det_path, dets / "a.parquet")
    with pytest.raises(ConfigError, match=r"no detection file for 1 video\(s\): b.mp4"):
        find_jobs(vids, dets)


def test_a_failing_video_does_not_stop_the_others(scene, tmp_path):
    video, det_path, _ = scene
    vids, dets = tmp_path / "videos", tmp_path / "dets"
    vids.mkdir()
    dets.mkdir()
    shutil.copy(video, vids / "good.mp4")
    (vids / "bad.mp4").write_bytes(b"garbage" * 100)
    shutil.copy(det_path, dets / "good.parquet")
    shutil.copy(det_path, dets / "bad.parquet")
    outcomes = {o.job.stem: o for o in mine_many(find_jobs(vids, dets), tmp_path / "out")}
    assert outcomes["good"].summary is not None
    assert "bad.mp4" in (outcomes["bad"].error or "")


HPP = HardPositiveParams()


def missed_and_flicker(tmp_path):
    """A walking object missed in frames 12-13 (a hard positive) and a flicker in frame 9, in
    a video with B-frames (which the decoder skips when nobody reads them)."""
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
    video = write_video(tmp_path / "walk.mp4", render_frames(N, sprites=[a]), bframes=3)
    kept = [t for t in range(N) if t not in (12, 13)]
    return video, detections([*sprite_rows(a, kept), (9, *FALSE_BOX, 0.9)], N)


@pytest.mark.skipif(not process_decoding_available(), reason="needs fork")
def test_skipping_the_frames_nobody_reads_changes_no_verdict(tmp_path):
    video, dets = missed_and_flicker(tmp_path)
    skipped = []

    def verdicts(frames):
        out = []
        for fv in iter_flickers(frames, dets, MinerParams(), 320, 240, hard_positives=HPP):
            fields = (fv.hard_negative, fv.before, fv.after, fv.before_offset, fv.after_offset)
            hps = [(h.t, h.box.tolist(), h.similarity, h.a, h.b) for h in fv.hard_positives]
            out.append((fv.frame.index, [f.tolist() for f in fields], hps))
        return out

    def in_thread(needs):
        for frame in VideoReader(video).frames(wanted=needs.any()):
            skipped.append(frame._av is None)  # not even decoded
            yield frame

    full = verdicts(list(VideoReader(video)))  # every frame decoded, nothing skipped
    assert {t for t, (hn, *_), _ in full if any(hn)} == {9}
    assert {t for t, _, hps in full if hps} == {12, 13}
    assert verdicts(lambda needs: decode_in_process(video, needs)) == full
    assert verdicts(in_thread) == full
    assert sum(skipped) >= 3


def test_both_decoders_write_identical_outputs(tmp_path):
    video, dets = missed_and_flicker(tmp_path)
    outs = {}
    for decoder in ("thread", "process"):
        out = tmp_path / decoder
        summary = mine_video(video, dets, out, hard_positives=HardPositiveParams(), decoder=decoder)
        assert summary["hard_negatives"] == 1 and summary["hard_positives"] == 2
        outs[decoder] = {
            p.relative_to(out): p.read_bytes()
            for p in sorted(out.rglob("*"))
            if p.is_file() and p.suffix != ".json"
        }
    assert outs["thread"].keys() == outs["process"].keys()
    assert len([p for p in outs["thread"] if p.suffix == ".jpg"]) == 6
    for path, data in outs["thread"].items():
        if path.suffix == ".parquet":
            assert pq.read_table(tmp_path / "process" / path).equals(
                pq.read_table(tmp_path / "thread" / path)
            )
        else:
            assert outs["process"][path] == data, path


@pytest.mark.parametrize("decoder", ["thread", "process"])
def test_a_phone_video_is_mined_upright_like_the_same_scene_unturned(tmp_path, decoder):
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
    upright = render_frames(N, sprites=[a])  # 320 x 240; detections in these coordinates
    kept = [t for t in range(N) if t not in (12, 13)]
    dets = detections([*sprite_rows(a, kept), (9, *FALSE_BOX, 0.9)], N)
    phone = write_video(tmp_path / "phone.mp4", upright, bframes=3, rotation=270)
    out = tmp_path / "out"
    summary = mine_video(phone, dets, out, hard_positives=HardPositiveParams(), decoder=decoder)
    assert (summary["width"], summary["height"]) == (320, 240)
    assert (summary["hard_negatives"], summary["hard_positives"]) == (1, 2)
    written = cv2.imread(str(out / "frames" / "phone" / "frame10.jpg"))  # the flicker's frame
    assert written.shape == upright[9].shape
    assert np.abs(written.astype(int) - upright[9]).mean() < 4


def test_detections_made_on_frames_of_another_size_are_refused(tmp_path):
    a = Sprite(texture(7, 64, 48), {t: (100 + 2 * t, 80) for t in range(N)})
    phone = write_video(tmp_path / "phone.mp4", render_frames(N, sprites=[a]), rotation=90)
    dets = detections(sprite_rows(a, range(N)), N)
    dets.meta.update(width=240, height=320)  # detected on the unturned pictures
    with pytest.raises(InvalidDetectionsError, match=r"240x320 frames.*are 320x240.*90 degrees"):
        mine_video(phone, dets, tmp_path / "out")
    dets.meta.update(width=640, height=480)
    with pytest.raises(InvalidDetectionsError, match=r"made on 640x480 frames") as info:
        mine_video(phone, dets, tmp_path / "out")
    assert "degrees" not in str(info.value)
    dets.meta.update(width=320, height=240)
    assert mine_video(phone, dets, tmp_path / "out")["frames"] == N


_HOLD_A_VIDEO = """
import sys, time
from pathlib import Path
from flickermine.mine.outputs import VideoResultWriter
writer = VideoResultWriter(Path(sys.argv[1]), "walk", {}, overwrite=True)  # mining "walk"
print("holding", flush=True)
time.sleep(60)
"""


def test_two_runs_writing_into_one_folder_never_mine_the_same_video_at_once(scene, tmp_path):
    from flickermine.mine.outputs import discard_unclaimed
    from tests_helpers import another_run

    video, _, dets = scene
    out = tmp_path / "out"
    mine_video(video, dets, out)
    script = tmp_path / "other_run.py"
    script.write_text(_HOLD_A_VIDEO)
    with another_run(script, str(out)):
        partial = sorted(p.name for p in out.glob(".walk.*.partial"))
        assert partial  # the other run's files being written
        # This run (--overwrite or --resume) refuses the video instead of deleting them.
        with pytest.raises(OutputExistsError, match="another run .* is mining this video now"):
            mine_video(video, dets, out, overwrite=True)
        # Nor does the clean-up after a dead worker of this run remove them.
        discard_unclaimed(out, "walk")
        assert sorted(p.name for p in out.glob(".walk.*.partial")) == partial
    discard_unclaimed(out, "walk")  # now nobody is writing them: half-written files go
    assert not list(out.glob(".walk.*"))
    # A run that dies releases the video: it can be mined again, and leaves no lock file.
    mine_video(video, dets, out, overwrite=True)
    assert not list(out.glob(".*lock"))


def test_unknown_decoder_is_refused(scene, tmp_path):
    video, det_path, _ = scene
    with pytest.raises(ConfigError, match="decoder: expected one of auto, process, thread"):
        mine_video(video, det_path, tmp_path / "out", decoder="gpu")


@pytest.mark.skipif(not process_decoding_available(), reason="needs fork")
def test_on_the_bundled_real_clip_skipping_changes_no_verdict():
    # Real H.264 with B-frames (the demo's clip), boxes moving at several speeds (the fast ones
    # need template searches), dropped detections and isolated false boxes.
    from flickermine.demo import sample_video

    clip = sample_video()
    reader = VideoReader(clip)
    n, w, h = reader.num_frames, reader.width, reader.height
    rng = np.random.default_rng(3)
    rows = []
    for k, (speed, first, last) in enumerate([(1, 0, n), (2, 0, n), (1.5, 0, n), (14, 60, 100)]):
        x, y = rng.uniform(50, w - 150), rng.uniform(50, h - 200)
        angle = rng.uniform(0, 2 * np.pi)
        for t in range(first, last):
            bx = (x + speed * np.cos(angle) * t) % (w - 120)
            by = (y + speed * np.sin(angle) * t) % (h - 160)
            if rng.random() > 0.1:
                rows.append((t, bx, by, bx + 60 + 4 * k, by + 120, 0.9))
    for t in rng.choice(n, 3, replace=False):
        bx, by = rng.uniform(20, w - 100), rng.uniform(20, h - 100)
        rows.append((int(t), bx, by, bx + 50, by + 70, 0.8))
    rows.sort(key=lambda r: r[0])
    dets = detections(rows, n)
    needs_seen = []
    decoded = []

    def verdicts(frames):
        out = []
        for fv in iter_flickers(frames, dets, MinerParams(), w, h, hard_positives=HPP):
            fields = (fv.hard_negative, fv.before, fv.after, fv.before_offset, fv.after_offset)
            hps = [(h.t, h.box.tolist(), h.similarity) for h in fv.hard_positives]
            out.append((fv.frame.index, [f.tolist() for f in fields], hps))
        return out

    def in_child(needs):
        needs_seen.append(needs)
        return decode_in_process(clip, needs)

    def in_thread(needs):
        for frame in VideoReader(clip).frames(wanted=needs.any()):
            decoded.append(frame._av is not None)
            yield frame

    full = verdicts(VideoReader(clip))  # every frame decoded
    assert verdicts(in_child) == full
    assert verdicts(in_thread) == full
    assert needs_seen[0].gray.sum() > 20  # template searches did read pixels
    assert 0 < sum(decoded) < n - 20  # and frames nobody read were not decoded
    assert any(any(hn) for _, (hn, *_), _ in full)
