"""RingBuffer: the fixed-size single-producer/single-consumer ring between the audio
thread and the writer thread."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

from dictaphone.capture.ring import RingBuffer

JOIN = 5.0  # seconds: a "does not hang" bound, never a speed requirement


def frames(start: int, n: int, channels: int = 1, dtype="int32") -> np.ndarray:
    """Frames whose channel c of frame i holds i * 10 + c: every frame is recognisable."""
    i = np.arange(start, start + n, dtype=np.int64)[:, None] * 10
    return (i + np.arange(channels)).astype(dtype)


def test_a_new_ring_is_empty_with_all_its_capacity_free():
    ring = RingBuffer(16, 2, "int16")
    assert len(ring) == 0
    assert ring.free == 16
    assert ring.read().shape == (0, 2)


@pytest.mark.parametrize("capacity, channels", [(0, 1), (4, 0), (-1, 2)])
def test_a_ring_without_room_or_channels_is_refused(capacity, channels):
    with pytest.raises(ValueError):
        RingBuffer(capacity, channels)


def test_frames_come_out_in_order_across_the_wraparound():
    ring = RingBuffer(8, 2, "int32")
    assert ring.write(frames(0, 6, 2)) == 6
    np.testing.assert_array_equal(ring.read(4), frames(0, 4, 2))
    # frames 4 and 5 wait at positions 4..5; 6 more go to 6..7 and wrap to 0..3
    assert ring.write(frames(6, 6, 2)) == 6
    assert len(ring) == 8 and ring.free == 0
    np.testing.assert_array_equal(ring.read(), frames(4, 8, 2))
    assert len(ring) == 0


def test_many_laps_around_the_ring_keep_every_frame_in_order():
    ring = RingBuffer(7, 1, "int32")
    out = []
    pos = 0
    for n in [3, 5, 7, 1, 6, 2, 7, 4] * 5:
        assert ring.write(frames(pos, n)) == n
        pos += n
        out.append(ring.read())
    np.testing.assert_array_equal(np.concatenate(out), frames(0, pos))


def test_a_write_to_a_full_ring_keeps_what_fits_and_returns_the_count():
    ring = RingBuffer(8, 1, "int32")
    assert ring.write(frames(0, 5)) == 5
    assert ring.write(frames(5, 10)) == 3  # only 3 frames of room were left
    assert ring.write(frames(15, 4)) == 0  # full: nothing, and no waiting
    assert len(ring) == 8
    np.testing.assert_array_equal(ring.read(), frames(0, 8))


def test_a_write_to_a_full_ring_returns_at_once_even_with_no_consumer():
    ring = RingBuffer(4, 1)
    ring.write(np.zeros((4, 1), np.float32))
    result = []
    t = threading.Thread(target=lambda: result.append(ring.write(np.ones((100, 1), np.float32))))
    t.start()
    t.join(JOIN)
    assert not t.is_alive() and result == [0]


def test_read_into_moves_at_most_the_length_of_out():
    ring = RingBuffer(16, 1, "int32")
    ring.write(frames(0, 10))
    out = np.zeros((4, 1), "int32")
    assert ring.read_into(out) == 4
    np.testing.assert_array_equal(out, frames(0, 4))
    assert len(ring) == 6


def test_read_into_moves_at_most_max_frames():
    ring = RingBuffer(16, 1, "int32")
    ring.write(frames(0, 10))
    out = np.full((8, 1), -1, "int32")
    assert ring.read_into(out, max_frames=3) == 3
    np.testing.assert_array_equal(out[:3], frames(0, 3))
    assert (out[3:] == -1).all()  # the rest of out is untouched
    assert len(ring) == 7


def test_read_into_moves_at_most_what_is_waiting():
    ring = RingBuffer(16, 1, "int32")
    ring.write(frames(0, 2))
    out = np.zeros((8, 1), "int32")
    assert ring.read_into(out) == 2
    assert ring.read_into(out) == 0
    assert ring.read_into(out, max_frames=0) == 0


def test_read_into_across_the_wraparound_joins_both_parts():
    ring = RingBuffer(5, 1, "int32")
    ring.write(frames(0, 4))
    ring.read(3)
    ring.write(frames(4, 4))  # positions 4, 0, 1, 2
    out = np.zeros((10, 1), "int32")
    assert ring.read_into(out) == 5
    np.testing.assert_array_equal(out[:5], frames(3, 5))


def test_write_all_waits_for_the_consumer_and_delivers_everything_in_order():
    ring = RingBuffer(64, 2, "int32")
    data = frames(0, 5000, 2)
    done = []

    def produce():
        done.append(ring.write_all(data))

    received = []

    def consume():
        out = np.zeros((37, 2), "int32")
        total = 0
        while total < len(data):
            n = ring.read_into(out)
            if n:
                received.append(out[:n].copy())
                total += n
            else:
                time.sleep(0)

    producer = threading.Thread(target=produce)
    consumer = threading.Thread(target=consume)
    producer.start()
    consumer.start()
    producer.join(JOIN)
    consumer.join(JOIN)
    assert not producer.is_alive() and not consumer.is_alive()
    assert done == [True]
    np.testing.assert_array_equal(np.concatenate(received), data)


def test_write_all_blocks_while_the_ring_is_full_and_resumes_when_space_is_freed():
    ring = RingBuffer(10, 1, "int32")
    done = []
    producer = threading.Thread(target=lambda: done.append(ring.write_all(frames(0, 25))))
    producer.start()
    try:
        producer.join(0.3)
        assert producer.is_alive(), "write_all returned although 15 frames could not fit"
        assert len(ring) == 10
        got = [ring.read()]  # frees 10 frames: the producer can go on
        while producer.is_alive() or len(ring):
            got.append(ring.read())
            producer.join(0.01)
        assert done == [True]
        np.testing.assert_array_equal(np.concatenate(got), frames(0, 25))
    finally:
        ring.close()
        producer.join(JOIN)


def test_close_releases_a_blocked_write_all_which_returns_false():
    ring = RingBuffer(10, 1, "int32")
    done = []
    producer = threading.Thread(target=lambda: done.append(ring.write_all(frames(0, 25))))
    producer.start()
    producer.join(0.2)
    assert producer.is_alive()
    ring.close()
    producer.join(JOIN)
    assert not producer.is_alive()
    assert done == [False]


def test_write_all_on_a_closed_ring_returns_false_without_writing():
    ring = RingBuffer(10, 1, "int32")
    ring.close()
    assert ring.write_all(frames(0, 3)) is False
    assert len(ring) == 0


def test_write_all_of_no_frames_succeeds():
    ring = RingBuffer(4, 1)
    assert ring.write_all(np.zeros((0, 1), np.float32)) is True


@pytest.mark.parametrize("dtype, itemsize", [("int16", 2), ("int32", 4), ("float32", 4)])
@pytest.mark.parametrize("channels", [1, 2, 6])
def test_nbytes_is_capacity_times_channels_times_itemsize(dtype, itemsize, channels):
    ring = RingBuffer(1000, channels, dtype)
    assert ring.nbytes == 1000 * channels * itemsize


def test_memory_is_allocated_once_and_never_grows():
    ring = RingBuffer(480, 2, "int16")
    nbytes = ring.nbytes
    storage = ring._buf
    block = frames(0, 100, 2, "int16")
    out = np.zeros((64, 2), "int16")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):  # ~400 laps, with writes refused when full
            ring.write(block)
            ring.read_into(out)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ring.nbytes == nbytes == 480 * 2 * 2
    assert ring._buf is storage
    assert grown < 4096, f"the ring kept {grown} bytes more after 2000 write/read rounds"


@pytest.mark.parametrize("dtype, values", [
    ("int16", [-32768, -1, 0, 1, 32767]),
    ("int32", [-(2 ** 31), -(2 ** 8), 0, 2 ** 24 + 1, 2 ** 31 - 1]),
    ("float32", [-1.0, -1e-7, 0.0, 0.5, 1.0]),
])
def test_samples_keep_their_dtype_and_exact_value(dtype, values):
    ring = RingBuffer(8, 1, dtype)
    data = np.array(values, dtype=dtype)[:, None]
    assert ring.write(data) == len(values)
    out = ring.read()
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(out, data)


def test_a_concurrent_producer_and_consumer_lose_and_reorder_nothing():
    """The lock-free path: write() retried by a producer thread, read_into() by another."""
    ring = RingBuffer(101, 1, "int32")
    total = 50_000
    received = np.zeros((total, 1), "int32")
    data = frames(0, total)

    def produce():
        pos = 0
        while pos < total:
            n = ring.write(data[pos:pos + 333])
            pos += n
            if not n:
                time.sleep(0)  # let the consumer run instead of spinning on the GIL

    def consume():
        pos = 0
        while pos < total:
            n = ring.read_into(received[pos:])
            pos += n
            if not n:
                time.sleep(0)

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    np.testing.assert_array_equal(received, data)
