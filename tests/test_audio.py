"""Hearing (``docs/audio.md``): the FSDD loader and its refusals, the log-mel front-end, the
waveform distortions, and an audio model that trains, saves, sleeps and is attacked."""

from __future__ import annotations

import os
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from sleepnet.audio.dataset import load_fsdd, parse_name
from sleepnet.audio.frontend import LogMel, features, fit_ref, mel_filterbank
from sleepnet.audio.fsdd import KNOWN_SHA256, N_SAMPLES, fit_length, load_recordings
from sleepnet.data import Dataset
from sleepnet.errors import SleepnetError
from sleepnet.evaluation import waveform as ad

from .conftest import run_cli

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
FIXTURES = Path(__file__).parent / "fixtures" / "audio"


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, channels: int = 1, width: int = 2) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2" if width == 2 else np.uint8).tobytes())


def tone(digit: int, speaker: int, n: int = 3000, seed: int = 0) -> np.ndarray:
    """A recording that says its digit by its pitch: ``300 + 250 digit`` Hz, some noise, int16."""
    rng = np.random.default_rng([digit, speaker, seed])
    t = np.arange(n) / 8000
    f = 300 + 250 * digit + 20 * speaker
    s = 0.3 * np.sin(2 * np.pi * f * t) * np.hanning(n) + 0.01 * rng.standard_normal(n)
    return np.round(s * 32767).astype(np.int16)


@pytest.fixture
def tones(tmp_path) -> Path:
    """A tiny FSDD-like folder: 2 speakers x 10 digits x indices 0-7 (0-4 test, 5-7 train)."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for d in range(10):
        for s, who in enumerate(("ann", "bob")):
            for i in range(8):
                write_wav(folder / f"{d}_{who}_{i}.wav", tone(d, s, 2000 + 100 * i, i))
    (folder / "README.txt").write_text("not a recording: ignored")
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("SLEEPNET_DATA", str(where))
    return where


# --- the loader ------------------------------------------------------------------------------


def test_recordings_are_read_labelled_and_padded_exactly(tones, cache):
    rec = load_recordings(tones, cache=cache)
    assert len(rec.names) == 160 and rec.x.shape == (160, N_SAMPLES) and rec.x.dtype == np.float32
    k = rec.names.index("3_bob_2.wav")
    assert (rec.digit[k], rec.speaker[k], rec.index[k], rec.length[k]) == (3, "bob", 2, 2200)
    s = tone(3, 1, 2200, 2)
    np.testing.assert_array_equal(rec.x[k, :2200], (s.astype(np.float32) + 32768) / 65536)
    assert np.all(rec.x[k, 2200:] == 0.5) and rec.x.min() >= 0 and rec.x.max() < 1
    np.testing.assert_array_equal(2 * rec.x[k, :2200].astype(np.float64) - 1, s / 32768)
    long = fit_length(np.arange(N_SAMPLES + 10, dtype=np.int16))
    assert long.shape == (N_SAMPLES,) and long[-1] == (N_SAMPLES - 1 + 32768) / 65536
    train, test = rec.split()
    assert test.sum() == 100 and train.sum() == 60 and set(rec.index[test]) == set(range(5))
    train, test = rec.split("speaker:ann")
    assert set(rec.speaker[test]) == {"ann"} and set(rec.speaker[train]) == {"bob"}


def test_decoded_recordings_are_cached_and_a_zip_reads_the_same(tones, cache, tmp_path):
    first = load_recordings(tones, cache=cache)
    files = list((cache / "fsdd").glob("recordings-*.npz"))
    assert len(files) == 1
    again = load_recordings(tones, cache=cache)
    np.testing.assert_array_equal(first.x, again.x)
    assert again.sha256 == first.sha256 and again.names == first.names
    zipped = tmp_path / "fsdd.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        for p in sorted(tones.glob("*.wav")):
            z.write(p, f"free-spoken-digit-dataset-master/recordings/{p.name}")
    from_zip = load_recordings(zipped, cache=None)
    np.testing.assert_array_equal(from_zip.x, first.x)
    assert from_zip.sha256 == first.sha256
    files[0].write_bytes(b"damaged")  # a damaged cache is decoded again
    np.testing.assert_array_equal(load_recordings(tones, cache=cache).x, first.x)


def test_datasets_carry_the_front_end_or_its_features(tones, cache):
    wav = load_fsdd("fsdd", tones)
    assert wav.x_train.shape == (60, N_SAMPLES) and wav.frontend["type"] == "logmel"
    front = LogMel.from_record(wav.frontend)
    assert wav.n_features == front.n_features == 63 * 32 and wav.image_shape is None
    assert front.ref == fit_ref(wav.x_train, N_SAMPLES, 8000)
    mel = load_fsdd("fsdd-mel", tones)
    assert mel.x_test.shape == (100, 63 * 32) and mel.image_shape == (63, 32) and mel.frontend is None
    with torch.no_grad():
        np.testing.assert_allclose(mel.x_test, np.clip(front(torch.from_numpy(wav.x_test)).numpy(), 0, 1))
    held = load_fsdd("fsdd:speaker=bob", tones)
    assert len(held.x_test) == 80 and held.sha256 != wav.sha256 != mel.sha256
    assert parse_name("fsdd-mel:speaker=x") == ("fsdd-mel", "speaker:x")
    for bad in ("fsdd:bob", "fsdd:speaker="):
        with pytest.raises(SleepnetError, match="speaker=NAME"):
            parse_name(bad)


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no wav file"),
    ("missing", "does not exist"),
    ("few", "too few FSDD recordings: the test set"),
    ("corrupt", "0_ann_0.wav is not a readable wav file"),
    ("rate", "0_ann_0.wav is sampled at 16000 Hz: FSDD is 8000 Hz (sleepnet does not resample"),
    ("stereo", "0_ann_0.wav has 2 channels"),
    ("8bit", "0_ann_0.wav has 8-bit samples"),
    ("unlabelled", "hello.wav in"),
    ("truncated", "0_ann_0.wav"),
    ("not-zip", "neither a folder nor a zip"),
])  # fmt: skip
def test_bad_folders_are_refused_in_one_line_naming_the_file(tones, tmp_path, case, message):
    source = tones
    first = tones / "0_ann_0.wav"
    if case == "empty":
        source = tmp_path / "empty"
        source.mkdir()
    elif case == "missing":
        source = tmp_path / "nowhere"
    elif case == "few":
        for p in tones.glob("7_*_[0-4].wav"):
            p.unlink()
    elif case == "corrupt":
        first.write_bytes(b"RIFF....WAVEjunk")
    elif case == "rate":
        write_wav(first, tone(0, 0), rate=16000)
    elif case == "stereo":
        write_wav(first, np.repeat(tone(0, 0), 2), channels=2)
    elif case == "8bit":
        write_wav(first, np.full(100, 128), width=1)
    elif case == "unlabelled":
        write_wav(tones / "hello.wav", tone(0, 0))
    elif case == "truncated":
        first.write_bytes(first.read_bytes()[:60])
    elif case == "not-zip":
        source = tmp_path / "fsdd.zip"
        source.write_text("not a zip")
    with pytest.raises(SleepnetError) as err:
        load_recordings(source, cache=None).split()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_cli_says_where_to_get_fsdd_and_writes_nothing(tones, tmp_path):
    env_free = {k: v for k, v in os.environ.items() if k != "SLEEPNET_FSDD"}
    out = tmp_path / "model"
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "sleepnet", "train", "--dataset", "fsdd", "-o", str(out)],
                         capture_output=True, text=True, env=env_free)  # fmt: skip
    assert res.returncode != 0 and "free-spoken-digit-dataset" in res.stderr and "--data-dir" in res.stderr
    assert res.stderr.strip().count("\n") == 0 and not out.exists()
    write_wav(tones / "0_ann_0.wav", tone(0, 0), rate=44100)
    res = run_cli("train", "--dataset", "fsdd", "--data-dir", tones, "-o", out)
    assert res.returncode != 0 and "44100 Hz" in res.stderr and res.stderr.strip().count("\n") == 0
    assert not out.exists()


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the FSDD copy is not at {SHARED}")
def test_the_real_fsdd_copy(cache):
    rec = load_recordings(SHARED, cache=cache)
    assert len(rec.names) == 3000 and rec.sha256 == KNOWN_SHA256
    assert sorted(set(rec.speaker)) == ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    train, test = rec.split()
    assert (train.sum(), test.sum()) == (2700, 300)
    assert np.bincount(rec.digit[test]).tolist() == [30] * 10
    assert (rec.length > N_SAMPLES).sum() == 17  # trimmed: 0.6 %


# --- the front-end ---------------------------------------------------------------------------


def test_mel_filterbank_matches_librosa():
    """Against ``librosa.filters.mel(sr=8000, n_fft=256, n_mels=32, htk=True, norm=None)`` (librosa 0.11.0),
    ``tests/fixtures/audio/make_reference.py``."""
    ref = np.load(FIXTURES / "librosa_mel.npz")
    ours = mel_filterbank(8000, 256, 32)
    np.testing.assert_allclose(ours, ref["mel"], atol=1e-6)
    np.testing.assert_allclose(LogMel(N_SAMPLES, 8000, 1.0).mel_power(torch.from_numpy(ref["x"])).numpy(),
                               ref["melspec"] / ref["window_sum"] ** 2, rtol=1e-4, atol=1e-9)  # fmt: skip


def test_a_tone_lights_its_own_mel_band_and_the_map_is_smooth():
    front = LogMel(N_SAMPLES, 8000, ref=1e-2)
    t = np.arange(N_SAMPLES) / 8000
    x = torch.from_numpy(((0.5 * np.sin(2 * np.pi * 1000 * t) + 1) / 2).astype(np.float32))[None]
    feats = front(x).reshape(front.frames, front.n_mels)
    bank = mel_filterbank(8000, 256, 32)
    assert int(feats.mean(0).argmax()) == int(bank[:, round(1000 / 8000 * 256)].argmax())
    assert front.frames == 63 and feats.shape == (63, 32)
    # no clipping anywhere: the derivative is nonzero wherever there is sound
    quiet = (x - 0.5) * 1e-3 + 0.5
    quiet.requires_grad_(True)
    front(quiet).sum().backward()
    assert (quiet.grad.abs() > 0).float().mean() > 0.99
    with pytest.raises(ValueError, match="8192"):
        front(torch.zeros(2, 100))


# --- distortions -----------------------------------------------------------------------------


def test_white_noise_and_babble_reach_their_snr_and_time_shift_delays():
    rng = np.random.default_rng(0)
    s = np.zeros((6, N_SAMPLES))
    s[:, :4000] = 0.2 * rng.standard_normal((6, 4000))
    x = ((s + 1) / 2).astype(np.float32)
    a = ad.amplitude(torch.from_numpy(x))
    power = ad.signal_power(a).numpy()
    np.testing.assert_allclose(power, (a[:, :4000] ** 2).mean(1).numpy())
    noisy = ad.white_noise(x, 10.0, np.random.default_rng(1))
    noise = 2 * (noisy.astype(np.float64) - x)
    snr = 10 * np.log10(power / (noise**2).mean(1))
    assert np.all(np.abs(snr - 10.0) < 0.2) and noisy.dtype == np.float32
    perm = ad.derangement(6, np.random.default_rng(2))
    assert sorted(perm) == list(range(6)) and np.all(perm != np.arange(6))
    mixed = ad.babble(x, 5.0, np.random.default_rng(2))
    added = 2 * (mixed.astype(np.float64) - x)
    snr = 10 * np.log10(power / (added[:, :4000] ** 2).mean(1))
    np.testing.assert_allclose(snr, 5.0, atol=0.01)
    shifted = ad.time_shift(x, 100.0)
    np.testing.assert_array_equal(shifted[:, 800:], x[:, :-800])
    assert np.all(shifted[:, :800] == 0.5)
    loud = ad.white_noise(x, -30.0, np.random.default_rng(1))
    assert loud.min() >= 0 and loud.max() < 1  # clipped to the 16-bit full scale
    # the SNR of explicit perturbations that fill each budget, measured over the recording's samples
    signs = np.where(rng.random((6, N_SAMPLES)) < 0.5, -1.0, 1.0)
    for norm, eps, delta in (("inf", 0.001, 0.001 * signs),
                             ("2", 0.01, 0.01 * signs / np.sqrt(N_SAMPLES))):  # fmt: skip
        energy = (s[:, :4000] ** 2).sum(1)
        noise = ((2 * delta[:, :4000]) ** 2).sum(1) if norm == "inf" else ((2 * delta) ** 2).sum(1)
        np.testing.assert_allclose(ad.budget_snr(x, norm, eps), 10 * np.log10(energy / noise), rtol=1e-6)


# --- an audio model end to end ---------------------------------------------------------------


@pytest.fixture
def tone_data(tones, cache) -> Dataset:
    return load_fsdd("fsdd", tones)


def test_an_audio_model_trains_saves_sleeps_and_is_attacked_through_its_front_end(tone_data, tmp_path):
    from sleepnet.config import load_preset
    from sleepnet.evaluation.curve import attack_curve
    from sleepnet.models import load_model, save_model
    from sleepnet.sleep_phase import sleep
    from sleepnet.training import get_recipe, train

    model, record = train(tone_data, get_recipe("paper", epochs=40, sizes=(0, 64, 10)), seed=0)
    assert isinstance(model[0], LogMel) and record["recipe"]["sizes"][0] == 2016
    assert record["metrics"]["test_accuracy"] >= 0.8
    folder = save_model(model, tmp_path / "m", record)
    loaded, meta = load_model(folder)
    assert meta["architecture"][0]["type"] == "logmel" and meta["format"] == "sleepnet-model/4"
    x = torch.from_numpy(tone_data.x_test)
    assert torch.equal(loaded(x), model(x))
    config = load_preset("mnist-fgsm").replace(T=200, beta=[2.0, 2.0], alpha_scale=10.0, max_rate=200.0,
                                               input_mode="mean")
    result = sleep(model, config, tone_data.x_train)
    assert isinstance(result.model[0], LogMel) and result.conversion["sizes"][0] == 2016
    assert result.output.spike_counts[:, 1].sum() > 0  # the features drive hidden layer 1
    feats = features(model, tone_data.x_train)
    assert feats.min() >= 0 and feats.max() <= 1 and feats.shape == (60, 2016)
    res = attack_curve(model, tone_data.x_test[:20], tone_data.y_test[:20], "pgd", "inf", (0.0005, 0.01),
                       n_steps=10)  # fmt: skip
    assert res["n"] == 20 and res["robust_accuracy"]["0.01"] < res["clean_accuracy"]


def test_the_standard_recipe_and_the_cnn_hear_through_the_same_front_end(tone_data):
    from sleepnet.training import get_recipe, train

    for name, sizes in (("standard", (0, 32, 32, 10)), ("cnn", (0, 16, 10))):
        model, record = train(tone_data, get_recipe(name, epochs=2, sizes=sizes, channels=(4, 8)), seed=0)
        assert isinstance(model[0], LogMel) and record["recipe"]["sizes"][0] == 2016
        assert model(torch.from_numpy(tone_data.x_test[:3])).shape == (3, 10)
    assert isinstance(model[1], torch.nn.Unflatten) and tuple(model[1].unflattened_size) == (1, 63, 32)
