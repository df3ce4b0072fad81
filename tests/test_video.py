from __future__ import annotations

import numpy as np
import pytest

from flickermine.errors import VideoError
from flickermine.video import LateWanted, VideoReader

from factories import joined_sizes_video, write_video


def numbered_frames(n: int) -> list[np.ndarray]:
    """Frame t is a flat grey of level 10 * t: its number can be read back from pixels."""
    return [np.full((48, 64, 3), 10 * t, np.uint8) for t in range(n)]


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_reader_knows_count_fps_size_and_numbers_frames_in_order(tmp_path, suffix):
    path = write_video(tmp_path / f"v{suffix}", numbered_frames(12), fps=12)
    reader = VideoReader(path)
    assert (reader.num_frames, reader.width, reader.height) == (12, 64, 48)
    assert reader.fps == pytest.approx(12)
    levels = [(f.index, round(float(f.bgr.mean()) / 10)) for f in reader]
    assert levels == [(t, t) for t in range(12)]


def test_gray_agrees_with_bgr(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 255, (48, 64, 3), np.uint8), (0, 0), 2)]
    frame = next(iter(VideoReader(write_video(tmp_path / "v.mp4", frames))))
    gray_from_luma = frame.gray.astype(float)
    gray_from_bgr = cv2.cvtColor(frame.bgr, cv2.COLOR_BGR2GRAY).astype(float)
    assert gray_from_luma.shape == (48, 64)
    assert np.corrcoef(gray_from_luma.ravel(), gray_from_bgr.ravel())[0, 1] > 0.99


def test_unreadable_video_names_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00not a video at all" * 50)
    with pytest.raises(VideoError, match="broken.mp4"):
        VideoReader(bad)
    with pytest.raises(VideoError, match="not found"):
        VideoReader(tmp_path / "missing.mp4")


def textured(n: int) -> list[np.ndarray]:
    from factories import texture

    return [texture(t, 48, 64) for t in range(n)]


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_skipping_unwanted_frames_keeps_numbers_and_the_wanted_images(tmp_path, threads, seed):
    path = write_video(tmp_path / "b.mp4", textured(40), bframes=3)
    reader = VideoReader(path)
    full = [(f.index, f.gray.copy(), f.bgr.copy()) for f in reader.frames(threads=threads)]
    wanted = np.random.default_rng(seed).random(40) < 0.3
    frames = list(reader.frames(threads=threads, wanted=wanted))
    assert [f.index for f in frames] == list(range(40))
    decoded = [f for f in frames if f._av is not None]
    assert len(decoded) < 40 - 5  # the non-reference B-frames nobody wants were not decoded
    for f in frames:
        if wanted[f.index]:
            assert np.array_equal(f.gray, full[f.index][1])
            assert np.array_equal(f.bgr, full[f.index][2])
    for f in decoded:  # references decoded on the way are the right frames too
        assert np.array_equal(f.gray, full[f.index][1])


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_groups_of_pictures_nobody_reads_are_not_decoded_at_all(tmp_path, suffix):
    # Closed groups of 10 frames: only frames 25-27 are read, so the groups before and after
    # theirs, and the rest of theirs, need no decoding, reference frames included.
    path = write_video(tmp_path / f"g{suffix}", textured(60), bframes=2, keyint=10)
    reader = VideoReader(path)
    full = [f.gray.copy() for f in reader]
    wanted = np.zeros(60, np.bool_)
    wanted[25:28] = True
    frames = list(reader.frames(wanted=wanted))
    assert [f.index for f in frames] == list(range(60))
    decoded = [f.index for f in frames if f._av is not None]
    # Only their group's head; in MPEG-TS each IDR picture also carries the parameter sets,
    # so those pictures are decoded (the rest of their groups is not).
    outside = [t for t in decoded if not 20 <= t <= 29]
    assert outside == ([0, 10, 30, 40, 50] if suffix == ".ts" else [])
    for f in frames:
        if f._av is not None:
            assert np.array_equal(f.gray, full[f.index])
    # A run resumed half way: the groups before ``start`` are not decoded either.
    frames = list(reader.frames(start=40))
    assert [f.index for f in frames if f._av is not None] == (
        [0, 10, 20, 30, *range(40, 60)] if suffix == ".ts" else list(range(40, 60))
    )
    assert all(np.array_equal(frames[t].gray, full[t]) for t in range(40, 60))


def test_dropping_needs_an_idr_picture_next_and_keeps_parameter_sets():
    from flickermine.video import _SkippingPass, h264_nal_types

    class Packet(bytes):  # its bytes are the packet's data, as PyAV's packets give them
        def __new__(cls, pts, units, key=False, cut=0):
            data = b"".join(len(u).to_bytes(4, "big") + u for u in units)
            packet = super().__new__(cls, data[: len(data) - cut])
            packet.pts, packet.is_keyframe, packet.is_discard = pts, key, False
            packet.size = len(packet)
            return packet

    idr, p_slice, sps = b"\x65\x88", b"\x41\x9a", b"\x67\x42"

    def run(stream, wanted, most=100):
        n = _SkippingPass(np.array(wanted), reorders=False, nal_length=4)
        n.LOOKAHEAD, n.TAIL_PACKETS = 1, most
        ready = [item for packet in stream for item in n.read(packet)] + n.finish()
        return [(p.pts, w) for p, w in ready], n.dropped

    # IDR P P | IDR P P, nothing wanted in the first group: it is never decoded.
    gop = [[idr], [p_slice], [p_slice]]
    stream = [Packet(k, gop[k % 3], key=k % 3 == 0) for k in range(6)]
    ready, dropped = run(stream, [False, False, False, False, True, False])
    assert ready == [(3, False), (4, True)] and dropped == 4  # and the last P: nothing after it
    # At most TAIL_PACKETS held: the oldest are decoded after all.
    ready, dropped = run(stream, [False, False, False, False, True, False], most=1)
    assert [pts for pts, _ in ready] == [0, 1, 3, 4] and dropped == 2
    # A P frame wanted: the frames it is predicted from are decoded, those after it dropped.
    assert run(stream, [False, True, False, False, False, False]) == ([(0, False), (1, True)], 4)
    # A key frame that is not an IDR picture (open GOP) may be referred across: no drop there.
    stream[3] = Packet(3, [p_slice], key=True)
    ready, dropped = run(stream, [False, False, False, False, True, False])
    assert [pts for pts, _ in ready] == [0, 1, 2, 3, 4] and dropped == 1
    # A packet holding parameter sets is always decoded (later pictures may need them).
    stream = [Packet(0, [sps, idr], key=True), Packet(1, [p_slice]), Packet(2, [idr], key=True)]
    assert run(stream, [False, False, True]) == ([(0, False), (2, True)], 1)
    # Packets that do not parse are decoded; so are the ones held before them.
    stream[1] = Packet(1, [p_slice], cut=1)  # its unit's length says one byte more
    assert run(stream, [False, False, True])[1] == 0
    assert h264_nal_types(b"\0\0\0\x09\x41", 4) is None  # a unit longer than the packet
    assert h264_nal_types(b"\xc1\x00", 0) is None  # no start code
    assert h264_nal_types(b"\0\0\1\xc1", 0) is None  # forbidden bit set


def test_wanting_every_frame_or_a_short_mask(tmp_path):
    path = write_video(tmp_path / "b.mp4", textured(20), bframes=2)
    reader = VideoReader(path)
    full = [f.gray.copy() for f in reader]
    every = list(reader.frames(wanted=np.ones(20, np.bool_)))
    assert [np.array_equal(f.gray, g) for f, g in zip(every, full, strict=True)] == [True] * 20
    short = list(reader.frames(wanted=np.array([False, True])))  # frames past the end: unwanted
    assert [f.index for f in short] == list(range(20))
    assert np.array_equal(short[1].gray, full[1])
    assert any(f._av is None for f in short[2:])


@pytest.mark.parametrize(("start", "settle_at"), [(0, 12), (10, 0), (10, 12)])
def test_a_mask_settled_during_the_pass_skips_frames_from_then_on(tmp_path, start, settle_at):
    # A decoder started before its consumer knows what it will read: every frame is decoded
    # until the mask comes, then only what it (and the references) need.
    path = write_video(tmp_path / "b.mp4", textured(80), bframes=3)
    reader = VideoReader(path)
    full = [f.gray.copy() for f in reader]
    wanted = np.random.default_rng(start).random(80) < 0.3
    late = LateWanted()
    frames = []
    for frame in reader.frames(wanted=late, start=start):
        frames.append(frame)
        if frame.index == settle_at:
            late.settle(wanted)
    assert [f.index for f in frames] == list(range(80))
    # Before the mask came: every frame from ``start`` on; frames before it may be skipped.
    assert all(f._av is not None for f in frames[start : settle_at + 1])
    assert sum(f._av is None for f in frames[:start]) >= (2 if start else 0)
    # After: the non-reference frames nobody wants are skipped, the wanted ones are decoded.
    assert sum(f._av is None for f in frames[settle_at + 1 : 48]) >= 5
    assert sum(f._av is None for f in frames[48:]) >= 5
    for f in frames:
        if f._av is not None or (wanted[f.index] and f.index >= start):
            assert np.array_equal(f.gray, full[f.index])


@pytest.mark.parametrize("threads", [False, True])
def test_starting_half_way_decodes_the_rest_and_skips_what_the_rest_does_not_need(
    tmp_path, threads
):
    path = write_video(tmp_path / "b.mp4", textured(40), bframes=3)
    reader = VideoReader(path)
    full = [f.bgr.copy() for f in reader.frames(threads=threads)]
    frames = list(reader.frames(threads=threads, start=17))
    assert [f.index for f in frames] == list(range(40))
    assert sum(f._av is None for f in frames[:17]) >= 5  # non-reference frames not decoded
    for f in frames[17:]:  # every frame from the start on (past any mask): the full pass's
        assert np.array_equal(f.bgr, full[f.index])
    # With a mask: only the wanted frames from the start on.
    wanted = np.zeros(40, np.bool_)
    wanted[[3, 20, 30]] = True
    frames = list(reader.frames(threads=threads, wanted=wanted, start=10))
    assert [np.array_equal(frames[t].bgr, full[t]) for t in (20, 30)] == [True, True]
    assert sum(f._av is None for f in frames) >= 10


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_other_containers_and_codecs_number_frames_alike(tmp_path, suffix):
    path = write_video(tmp_path / f"b{suffix}", numbered_frames(12), bframes=2)
    wanted = np.zeros(12, np.bool_)
    wanted[[0, 5, 11]] = True
    frames = list(VideoReader(path).frames(wanted=wanted))
    assert [f.index for f in frames] == list(range(12))
    assert [round(float(frames[t].bgr.mean()) / 10) for t in (0, 5, 11)] == [0, 5, 11]


@pytest.mark.parametrize("pyramid", ["none", "normal"])
def test_avi_timestamps_do_not_number_frames_so_avi_is_decoded_in_full(tmp_path, pyramid):
    # AVI stores no presentation times: its packets' timestamps count packets in decoding
    # order, so with B-frames, numbering from them would hand out the wrong images.
    path = write_video(tmp_path / "b.avi", textured(40), bframes=3, pyramid=pyramid)
    reader = VideoReader(path)
    assert not reader.can_skip
    assert VideoReader(write_video(tmp_path / "b.mkv", textured(4), bframes=3)).can_skip
    full = [f.gray.copy() for f in reader]
    for seed in range(3):
        wanted = np.random.default_rng(seed).random(40) < 0.3
        frames = list(reader.frames(threads=False, wanted=wanted))
        assert [f.index for f in frames] == list(range(40))
        for t in np.flatnonzero(wanted):
            assert np.array_equal(frames[t].gray, full[t]), f"frame {t}"


def test_timestamps_in_decoding_order_are_not_used_to_number_frames(tmp_path):
    # A B-frame stream remuxed with each packet's decoding time as its timestamp (what an AVI
    # source gives): the timestamps never go back, though the decoder reorders the frames.
    import av

    source = write_video(tmp_path / "b.mp4", textured(40), bframes=3, pyramid="none")
    remuxed = tmp_path / "dts.mkv"
    with av.open(str(source)) as src, av.open(str(remuxed), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.pts, packet.stream = packet.dts, stream
                dst.mux(packet)
    reader = VideoReader(remuxed)
    assert reader.can_skip and reader.reorders
    full = [f.gray.copy() for f in reader]
    for seed in range(5):
        wanted = np.random.default_rng(seed).random(len(full)) < 0.3
        frames = list(reader.frames(threads=False, wanted=wanted))
        assert [f.index for f in frames] == list(range(len(full)))
        for t in np.flatnonzero(wanted):
            assert np.array_equal(frames[t].gray, full[t]), f"frame {t}"


def test_a_stream_starting_mid_group_is_numbered_as_a_full_pass_numbers_it(tmp_path):
    # Remux a B-frame video without its first packets: the file then starts on a non-key
    # frame, whose decoding drops frames; the timestamps cannot be trusted for numbering.
    import av

    source = write_video(tmp_path / "b.mp4", textured(30), bframes=3, keyint=8)
    cut = tmp_path / "cut.mkv"
    with av.open(str(source)) as src, av.open(str(cut), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for k, packet in enumerate(src.demux(src.streams.video[0])):
            if packet.size and k >= 2:
                packet.stream = stream
                dst.mux(packet)
    reader = VideoReader(cut)
    full = [(f.index, f.gray.copy()) for f in reader]
    assert 0 < len(full) < 28  # decoding starts at the next keyframe
    for wanted in (np.ones(len(full) + 5, np.bool_), np.arange(len(full)) >= len(full) - 3):
        frames = list(reader.frames(wanted=wanted))
        assert [f.index for f in frames] == [i for i, _ in full]
        for f, (_, gray) in zip(frames, full, strict=True):
            if wanted[f.index]:
                assert np.array_equal(f.gray, gray)


def test_numbering_from_timestamps_gives_up_when_packets_or_frames_do_not_fit():
    from types import SimpleNamespace as Packet

    from flickermine.video import _SkippingPass

    def numbering(pts_in_decoding_order, wanted, lookahead=2, reorders=True):
        n = _SkippingPass(np.array(wanted), reorders=reorders)
        n.LOOKAHEAD = lookahead
        ready = []
        for k, pts in enumerate(pts_in_decoding_order):
            ready += n.read(Packet(pts=pts, is_keyframe=k == 0, is_discard=False))
        return n, ready

    # I P B B in decoding order, displayed I B B P; a packet is released once numbered.
    n, ready = numbering([0, 30, 10, 20], [False, True, False, False])
    assert [(p.pts, w) for p, w in ready] == [(0, False)]  # P waits: its number is not known
    ready = n.finish()  # then released in decoding order
    assert [(p.pts, w) for p, w in ready] == [(30, False), (10, True), (20, False)]
    placed = n.place(Packet(pts=10))  # frame 0 skipped: yielded without pixels
    assert placed is not None and [(f.index, f._av is None) for f in placed] == [
        (0, True),
        (1, False),
    ]
    assert n.place(Packet(pts=30)) is not None and [f.index for f in n.rest()] == []
    assert n.consistent

    n, _ = numbering([0, 30, 10, 20], [False, False, True, False])
    n.finish()
    assert n.place(Packet(pts=30)) is None and not n.consistent  # wanted frame 2 never came
    for pts, other in [(None, 10), (15, 10), (10, 10)]:  # unknown or passed timestamps
        n, _ = numbering([0, 10, 20], [False] * 3, reorders=False)
        n.finish()
        assert n.place(Packet(pts=other)) is not None
        assert n.place(Packet(pts=pts)) is None
    # A reordering decoder with timestamps that never go back: they are decoding times.
    n, ready = numbering([0, 10, 20, 30], [False] * 4)
    assert ready == [] and not n.consistent
    n, _ = numbering([0, 10], [False] * 2)
    assert n.finish() == [] and not n.consistent
    n, ready = numbering([0, 10, 20, 30], [False] * 4, reorders=False)  # no B-frames: fine
    assert [p.pts for p, _ in ready] == [0, 10] and n.consistent
    n, _ = numbering([0, 20, 30, 10], [False] * 4, lookahead=1)  # 10 comes after 20 numbered
    assert not n.consistent
    n, _ = numbering([0, 10, 10], [False] * 3)  # a repeated timestamp
    assert not n.consistent
    n = _SkippingPass(np.zeros(3, np.bool_))
    assert n.read(Packet(pts=5, is_keyframe=False, is_discard=False)) == [] and not n.consistent
    n = _SkippingPass(np.zeros(3, np.bool_))
    assert n.read(Packet(pts=5, is_keyframe=True, is_discard=True)) == [] and not n.consistent


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_a_file_cut_at_an_open_gop_keyframe_is_numbered_as_a_full_pass_numbers_it(tmp_path, suffix):
    # Cut at the second keyframe of an open-GOP stream: the B-frames displayed before it refer
    # to the frames cut away, and the decoder drops them (Matroska), or the demuxer marks them
    # to be discarded (MP4 edit list). Counting their packets would shift every number.
    import av

    source = write_video(tmp_path / "o.mp4", textured(40), bframes=3, keyint=8, open_gop=True)
    cut = tmp_path / f"cut{suffix}"
    with av.open(str(source)) as src, av.open(str(cut), "w") as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        keyframes = kept = 0
        for packet in src.demux(src.streams.video[0]):
            keyframes += bool(packet.size and packet.is_keyframe)
            if packet.size and keyframes >= 2:
                packet.stream = stream
                dst.mux(packet)
                kept += 1
    reader = VideoReader(cut)
    full = [f.gray.copy() for f in reader]
    assert 0 < len(full) < kept  # the leading frames are gone
    rng = np.random.default_rng(0)
    for wanted in (np.arange(len(full)) >= 10, rng.random(len(full)) < 0.3):
        late = LateWanted()  # the same mask, settled once the leading frames are numbered
        settled_late = []
        for frame in reader.frames(wanted=late):
            settled_late.append(frame)
            late.settle(wanted)
        for frames in (list(reader.frames(wanted=wanted)), settled_late):
            assert [f.index for f in frames] == list(range(len(full)))
            for f in frames:
                if wanted[f.index]:
                    assert np.array_equal(f.gray, full[f.index])


def test_codecs_without_safe_skipping_decode_every_frame(tmp_path):
    import av

    path = tmp_path / "m.avi"
    with av.open(str(path), "w") as out:  # MPEG-4 part 2 with B-frames
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.max_b_frames = 2
        for img in textured(12):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    reader = VideoReader(path)
    assert reader.codec == "mpeg4"
    full = [f.gray.copy() for f in reader]
    frames = list(reader.frames(wanted=np.zeros(12, np.bool_)))
    assert [f.index for f in frames] == list(range(12))
    assert all(np.array_equal(f.gray, g) for f, g in zip(frames, full, strict=True))


# Encoder settings as found in the wild: B-frame pyramids or none, adaptive B-frames, several
# references, weighted prediction, open GOPs, short GOPs, scene cuts; every container the
# skipping pass may meet (and AVI, which it must not trust).
_ENCODINGS = [
    (".mp4", "keyint=12:bframes=3:b-adapt=2:b-pyramid=normal:ref=3", "medium"),
    (".mkv", "keyint=30:bframes=16:b-adapt=1:b-pyramid=none:ref=6:weightp=2", "veryfast"),
    (".mov", "keyint=5:bframes=2:b-adapt=0:b-pyramid=strict:ref=2:open-gop=1", "medium"),
    (".ts", "keyint=60:bframes=8:b-adapt=2:b-pyramid=normal:ref=4:open-gop=1", "veryfast"),
    (".flv", "keyint=250:bframes=4:b-adapt=1:b-pyramid=none:ref=1", "medium"),
    (".avi", "keyint=250:bframes=16:b-adapt=2:b-pyramid=none:ref=3", "veryfast"),
    (".avi", "keyint=60:bframes=2:b-adapt=2:b-pyramid=strict:ref=1:weightp=2", "medium"),
]


@pytest.mark.parametrize(("suffix", "params", "preset"), _ENCODINGS)
def test_skipping_matches_a_full_pass_across_encoders_and_containers(
    tmp_path, suffix, params, preset
):
    import av

    from factories import texture

    rng = np.random.default_rng(len(params))
    scenes = [texture(s, 96, 128) for s in range(3)]
    path = tmp_path / f"v{suffix}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 128, 96, "yuv420p"
        stream.options = {"crf": "18", "preset": preset, "x264-params": params}
        for t in range(90):  # a moving texture with two cuts and a moving block
            img = np.roll(scenes[t // 30], 2 * t, axis=1).copy()
            img[(3 * t) % 70 : (3 * t) % 70 + 20, 10:40] = (7 * t) % 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    reader = VideoReader(path)
    full = [f.gray.copy() for f in reader.frames(threads=False)]
    masks = [rng.random(len(full) + extra) < density
             for density, extra in [(0.02, 0), (0.1, -3), (0.3, 5), (0.6, 0)]]  # fmt: skip
    masks.append(np.isin(np.arange(len(full)), [*range(40, 47), 75]))  # long unread runs
    for density, wanted in zip([0.02, 0.1, 0.3, 0.6, 0.09], masks, strict=True):
        frames = list(reader.frames(threads=density > 0.2, wanted=wanted))
        assert [f.index for f in frames] == list(range(len(full)))
        for t in np.flatnonzero(wanted[: len(full)]):
            assert np.array_equal(frames[t].gray, full[t]), f"frame {t}"


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_phone_videos_are_turned_upright_as_opencv_shows_them(tmp_path, rotation):
    import cv2

    upright = textured(6)  # 48 x 64, stored turned, with a display rotation that turns it back
    path = write_video(tmp_path / "phone.mp4", upright, rotation=rotation)
    reader = VideoReader(path)
    assert reader.rotation == rotation
    assert (reader.width, reader.height) == (64, 48)
    capture = cv2.VideoCapture(str(path))  # OpenCV applies the display rotation too
    opencv_frames = [capture.read()[1] for _ in range(6)]
    full, skipping = reader.frames(), reader.frames(wanted=np.ones(6, bool))
    for frame, want, opencv in zip([*full, *skipping], upright * 2, opencv_frames * 2, strict=True):
        assert frame.bgr.shape == (*frame.gray.shape, 3) == (48, 64, 3)
        assert np.abs(frame.bgr.astype(int) - want).mean() < 3
        assert np.abs(frame.bgr.astype(int) - opencv).mean() < 3
        assert (
            np.corrcoef(frame.gray.ravel(), cv2.cvtColor(want, cv2.COLOR_BGR2GRAY).ravel())[0, 1]
            > 0.99
        )


def test_a_video_without_display_rotation_is_not_turned(tmp_path):
    reader = VideoReader(write_video(tmp_path / "v.mp4", textured(2)))
    assert reader.rotation == 0
    assert next(iter(reader)).gray.shape == (48, 64)


def test_the_main_video_stream_is_read_not_a_cover_picture_before_it(tmp_path):
    import av

    path = tmp_path / "with-cover.mkv"
    with av.open(str(path), "w") as out:
        cover = out.add_stream("mjpeg", rate=1)  # one still picture, the file's first stream
        cover.width, cover.height, cover.pix_fmt = 64, 64, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        main = out.add_stream("libx264", rate=12)
        main.width, main.height, main.pix_fmt = 64, 48, "yuv420p"
        still = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 250, np.uint8), format="bgr24")
        for packet in [*cover.encode(still), *cover.encode()]:
            out.mux(packet)
        for img in numbered_frames(12):
            for packet in main.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in main.encode():
            out.mux(packet)
    with av.open(str(path)) as probe:
        assert probe.streams.video[0].codec_context.name == "mjpeg"
    reader = VideoReader(path)
    assert (reader.codec, reader.num_frames, reader.width, reader.height) == ("h264", 12, 64, 48)
    levels = [(f.index, round(float(f.bgr.mean()) / 10)) for f in reader]
    assert levels == [(t, t) for t in range(12)]


def test_a_frame_size_change_within_the_video_is_an_error_naming_the_frame(tmp_path):
    joined = joined_sizes_video(tmp_path)
    reader = VideoReader(joined)
    for frames in (reader.frames(), reader.frames(wanted=np.ones(20, np.bool_))):
        seen = []
        with pytest.raises(VideoError, match=r"joined.ts: frame 11 \(1-based\) is 64x48, .* 96x64"):
            seen.extend(f.index for f in frames)
        assert seen == list(range(10))
