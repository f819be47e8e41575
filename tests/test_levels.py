"""Signal levels: peak/RMS in full-scale units and dBFS, for every capture dtype."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dictaphone.capture.levels import SILENCE_DBFS, LevelMeter, block_levels, full_scale, to_dbfs

DTYPES = ["int16", "int32", "float32"]
SINE_RMS_DBFS = 20 * math.log10(1 / math.sqrt(2))  # -3.0103 dBFS


def sine(dtype: str, amplitude: float = 1.0, n: int = 4800, channels: int = 1) -> np.ndarray:
    """A 1 kHz sine at 48 kHz (a whole number of periods), ``amplitude`` of full scale."""
    x = amplitude * np.sin(2 * np.pi * 1000 * np.arange(n) / 48000 + 0.1)
    if np.dtype(dtype).kind == "i":
        x = np.round(x * np.iinfo(dtype).max)
    return np.repeat(x[:, None], channels, axis=1).astype(dtype)


@pytest.mark.parametrize("dtype, scale", [("int16", 32768.0), ("int32", 2.0 ** 31),
                                          ("float32", 1.0), ("float64", 1.0)])
def test_full_scale_is_the_magnitude_of_the_most_negative_integer_or_one(dtype, scale):
    assert full_scale(dtype) == scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_full_scale_sine_peaks_at_0_dbfs_with_an_rms_of_minus_3_dbfs(dtype):
    peak, rms = block_levels(sine(dtype))
    assert to_dbfs(peak) == pytest.approx(0.0, abs=0.01)
    assert to_dbfs(rms) == pytest.approx(SINE_RMS_DBFS, abs=0.01)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_half_scale_sine_is_6_db_lower(dtype):
    peak, rms = block_levels(sine(dtype, 0.5))
    assert to_dbfs(peak) == pytest.approx(-6.02, abs=0.01)
    assert to_dbfs(rms) == pytest.approx(SINE_RMS_DBFS - 6.02, abs=0.01)


@pytest.mark.parametrize("dtype", DTYPES)
def test_silence_is_silence_dbfs(dtype):
    peak, rms = block_levels(np.zeros((512, 2), dtype))
    assert (peak, rms) == (0.0, 0.0)
    assert to_dbfs(peak) == SILENCE_DBFS and to_dbfs(rms) == SILENCE_DBFS


def test_an_empty_block_is_silence():
    assert block_levels(np.zeros((0, 1), "int16")) == (0.0, 0.0)


def test_to_dbfs_floors_very_quiet_values_at_silence_dbfs():
    assert to_dbfs(1e-9) == SILENCE_DBFS  # -180 dB, floored
    assert to_dbfs(-0.5) == SILENCE_DBFS
    assert to_dbfs(1.0) == 0.0
    assert to_dbfs(0.1) == pytest.approx(-20.0)


def test_the_most_negative_integer_sample_is_exactly_full_scale():
    peak, _ = block_levels(np.array([[0], [-32768], [100]], "int16"))
    assert peak == 1.0


def test_the_peak_is_taken_over_every_channel():
    block = np.zeros((100, 2), "int16")
    block[37, 1] = -16384
    peak, rms = block_levels(block)
    assert peak == 0.5
    assert rms == pytest.approx(0.5 / math.sqrt(200))


def test_int32_levels_do_not_overflow():
    block = np.full((1000, 1), 2 ** 31 - 1, "int32")
    peak, rms = block_levels(block)
    assert peak == pytest.approx(1.0, abs=1e-9)
    assert rms == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_meter_reads_a_full_scale_sine_like_block_levels(dtype):
    meter = LevelMeter(max_block=1024, channels=2)
    meter.update(sine(dtype, channels=2)[:960])  # 20 whole periods
    assert meter.peak_dbfs == pytest.approx(0.0, abs=0.01)
    assert meter.rms_dbfs == pytest.approx(SINE_RMS_DBFS, abs=0.01)
    assert meter.blocks == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_meter_counts_blocks_that_clip(dtype):
    meter = LevelMeter(max_block=4800)
    meter.update(sine(dtype, 1.0))  # touches full scale
    meter.update(sine(dtype, 0.5))
    meter.update(sine(dtype, 0.998))  # just under the clip threshold
    meter.update(sine(dtype, 2.0) if dtype == "float32" else sine(dtype, 1.0))
    assert meter.clipped == 2
    assert meter.blocks == 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_meter_reports_silence_after_sound(dtype):
    meter = LevelMeter()
    meter.update(sine(dtype))
    meter.update(np.zeros((256, 1), dtype))
    assert meter.peak == 0.0 and meter.rms == 0.0
    assert meter.peak_dbfs == SILENCE_DBFS and meter.rms_dbfs == SILENCE_DBFS
    assert meter.clipped == 1


def test_the_meter_starts_silent_and_ignores_empty_blocks():
    meter = LevelMeter()
    assert meter.peak_dbfs == SILENCE_DBFS and meter.blocks == 0
    meter.update(np.zeros((0, 1), np.float32))
    assert meter.blocks == 0


def test_the_meter_measures_blocks_larger_than_its_scratch_buffer():
    meter = LevelMeter(max_block=16)
    meter.update(sine("int16", 0.25, n=4800))
    assert meter.peak_dbfs == pytest.approx(-12.04, abs=0.01)
    assert meter.rms_dbfs == pytest.approx(SINE_RMS_DBFS - 12.04, abs=0.01)


def test_the_meter_does_not_allocate_per_block_within_its_scratch_size():
    meter = LevelMeter(max_block=1024, channels=2)
    scratch = meter._scratch
    for _ in range(10):
        meter.update(sine("int16", channels=2)[:1024])
    assert meter._scratch is scratch


def test_a_block_the_caller_reuses_is_measured_before_it_is_overwritten():
    meter = LevelMeter(max_block=4800)
    buf = sine("int16", 0.5)
    meter.update(buf)
    buf[:] = 0  # a PortAudio callback's buffer, reused for the next block
    assert meter.rms_dbfs == pytest.approx(SINE_RMS_DBFS - 6.02, abs=0.01)


@pytest.mark.parametrize("dtype", DTYPES)
def test_handed_over_blocks_are_measured_when_read_and_every_clipping_block_counts(dtype):
    meter = LevelMeter(max_block=4800)
    loud = sine(dtype, 2.0) if dtype == "float32" else sine(dtype, 1.0)
    for amplitude in (0.5, 0.25):
        meter.update(loud, owned=True)  # unread: only queued
        meter.update(sine(dtype, amplitude), owned=True)
        assert len(meter._queue) == 2
        expected = SINE_RMS_DBFS + 20 * np.log10(amplitude)
        assert meter.rms_dbfs == pytest.approx(expected, abs=0.01)
        assert not meter._queue
    assert meter.clipped == 2 and meter.blocks == 4


def test_blocks_nobody_reads_are_folded_so_the_queue_stays_bounded():
    meter = LevelMeter(max_block=4800)
    for _ in range(LevelMeter.FOLD_AFTER * 3 + 1):
        meter.update(sine("int16", 1.0), owned=True)
        assert len(meter._queue) < LevelMeter.FOLD_AFTER
    assert meter.clipped == LevelMeter.FOLD_AFTER * 3 + 1
