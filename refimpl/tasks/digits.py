"""Synthetic spoken digits in the layout of the Spiking Heidelberg Digits (docs/digits.md).

SHD (Cramer et al. 2020) cannot be downloaded here, so this module makes a data set of the same kind
offline: the 20 classes of SHD (the digits 0–9 spoken in English and in German), each utterance
synthesized by eSpeak NG (the optional extra ``digits``: the ``espeakng-loader`` wheel ships the
library and its voices; it is reached through ``ctypes``), turned into spikes by a cochlea-like front
end, and written in SHD's HDF5 layout so that :mod:`refimpl.tasks.datasets` and the ``shd`` preset
read it unchanged.

* **Speakers.** A speaker is an English voice (one of ``EN_VOICES``) with a voice variant
  (``VARIANTS``: male, female, klatt, croak, whisper); its German digits use the German voice with the
  same variant. The variants are split into training and test variants, so the test speakers' voices
  never occur in training (SHD also holds out speakers).
* **Utterances.** For each speaker, class and repetition: a random speaking rate, pitch, pitch range,
  amplitude, onset delay and background-noise level, all drawn from one random stream per utterance
  (``SeedSequence([seed, index])``). eSpeak NG carries state from one utterance to the next, so each is
  synthesized in a fresh process: a set is the same whatever the number of worker processes.
* **Front end.** An ERB-spaced bank of gammatone filters (``scipy.signal.gammatone``, 4th order IIR),
  half-wave rectification, power-law compression (exponent 0.5), normalization to the loudest 1% of the
  utterance, and one leaky integrate-and-fire encoder per channel (τ = 2 ms, refractory 1 ms) driven by
  the compressed signal at the audio rate.
"""

from __future__ import annotations

import ctypes
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numba import njit

from refimpl.checks import check_int

ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
KEYS = tuple(f"english-{w}" for w in ENGLISH) + tuple(f"german-{w}" for w in GERMAN)
EN_VOICES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("+m1", "+m3", "+m5", "+m7", "+m8", "+f1", "+f2", "+f3", "+f4", "+f5", "+klatt", "+croak", "+whisper")
TEST_VARIANTS = ("+m5", "+f3", "+klatt")  # held out: no training speaker has these
SAMPLE_RATE = 22050


@dataclass(frozen=True)
class DigitsConfig:
    """The size of a set and its front end. ``repeats``: utterances per speaker and class."""

    seed: int = 0
    train_speakers: int = 12
    test_speakers: int = 4
    repeats: int = 12
    channels: int = 700
    f_lo: float = 50.0
    f_hi: float = 8000.0
    tau_enc: float = 2e-3
    exponent: float = 0.5
    gain: float = 5.0

    def __post_init__(self):
        for key, lo in (("seed", 0), ("train_speakers", 1), ("test_speakers", 1), ("repeats", 1), ("channels", 1)):
            check_int(key, getattr(self, key), lo=lo)
        n_train = len(EN_VOICES) * (len(VARIANTS) - len(TEST_VARIANTS))
        if self.train_speakers > n_train or self.test_speakers > len(EN_VOICES) * len(TEST_VARIANTS):
            raise ValueError(f"at most {n_train} training and {len(EN_VOICES) * len(TEST_VARIANTS)} test speakers exist")


SMALL = DigitsConfig(train_speakers=3, test_speakers=1, repeats=1, channels=16)


# ---------------------------------------------------------------------------
# eSpeak NG through ctypes
# ---------------------------------------------------------------------------

_ESPEAK = {}
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def espeak_available() -> bool:
    try:
        import espeakng_loader  # noqa: F401
    except ImportError:
        return False
    return True


def _espeak():
    """The library, initialized once per process for synchronous synthesis into a Python buffer."""
    if "lib" not in _ESPEAK:
        try:
            import espeakng_loader
        except ImportError:
            raise ValueError("the spoken-digits generator needs the optional extra: pip install -e '.[digits]'") from None
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]  # fmt: skip
        sr = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # 2: AUDIO_OUTPUT_SYNCHRONOUS
        if sr != SAMPLE_RATE:
            raise RuntimeError(f"eSpeak NG initialized at {sr} Hz, expected {SAMPLE_RATE}")
        chunks = []

        def collect(wav, n, events):
            if n > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float64))
            return 0

        cb = _CALLBACK(collect)
        lib.espeak_SetSynthCallback(cb)
        _ESPEAK.update(lib=lib, chunks=chunks, cb=cb)
    return _ESPEAK["lib"], _ESPEAK["chunks"]


def synthesize(text: str, voice: str, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
    """The waveform (float64, 22.05 kHz, ±1 full scale) of ``text`` spoken by ``voice``."""
    lib, chunks = _espeak()
    chunks.clear()
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"eSpeak NG has no voice {voice!r}")
    for param, value in ((1, rate), (3, pitch), (4, pitch_range)):  # espeakRATE, espeakPITCH, espeakRANGE
        lib.espeak_SetParameter(param, int(value), 0)
    b = text.encode("utf-8")
    if lib.espeak_Synth(b, len(b) + 1, 0, 1, 0, 1, None, None) != 0:  # POS_CHARACTER, espeakCHARS_UTF8
        raise RuntimeError(f"eSpeak NG could not speak {text!r}")
    return (np.concatenate(chunks) if chunks else np.zeros(0)) / 32768.0


# ---------------------------------------------------------------------------
# the front end
# ---------------------------------------------------------------------------


def erb_frequencies(n: int, f_lo: float, f_hi: float) -> np.ndarray:
    """``n`` centre frequencies equally spaced on the ERB-rate scale (Glasberg & Moore 1990)."""
    erb = lambda f: 21.4 * np.log10(1.0 + 0.00437 * f)  # noqa: E731
    inv = lambda e: (10.0 ** (e / 21.4) - 1.0) / 0.00437  # noqa: E731
    return inv(np.linspace(erb(f_lo), erb(f_hi), n))


@njit(cache=True)
def lif_encode(drive, dt, tau, refractory):
    """Spike times (s) and channels of one LIF encoder per channel, ``τ dV/dt = -V + drive``, threshold 1,
    reset to 0, from ``drive`` ``(channels, samples)`` at step ``dt``."""
    C, S = drive.shape
    times = np.empty(C * S // 8 + 16)
    units = np.empty(C * S // 8 + 16, np.int64)
    n = 0
    a = math.exp(-dt / tau)
    for c in range(C):
        v = 0.0
        hold = 0
        for s in range(S):
            if hold > 0:
                hold -= 1
                continue
            v = a * v + (1.0 - a) * drive[c, s]
            if v >= 1.0:
                if n == times.shape[0]:
                    t2, u2 = np.empty(2 * n), np.empty(2 * n, np.int64)
                    t2[:n], u2[:n] = times, units
                    times, units = t2, u2
                times[n] = (s + 1) * dt
                units[n] = c
                n += 1
                v = 0.0
                hold = int(refractory / dt)
    order = np.argsort(times[:n], kind="mergesort")
    return times[:n][order], units[:n][order]


_FILTERS = {}


def filter_bank(channels: int, f_lo: float, f_hi: float) -> np.ndarray:
    """The gammatone filters as second-order sections, ``(channels, sections, 6)``: an 8th-order IIR
    filter at 50 Hz of a 22.05 kHz signal has its poles within 1e-2 of the unit circle, where the direct
    form loses digits (tens of percent at the lowest channels); a cascade of biquads does not."""
    key = (channels, f_lo, f_hi)
    if key not in _FILTERS:
        from scipy.signal import gammatone, tf2sos

        _FILTERS[key] = np.array([tf2sos(*gammatone(fc, "iir", fs=SAMPLE_RATE)) for fc in erb_frequencies(channels, f_lo, f_hi)])
    return _FILTERS[key]


@njit(cache=True)
def sos_bank(SOS, x):
    """Every channel's cascade of biquads (direct form II transposed) on ``x``: ``scipy.signal.sosfilt``
    for all channels at once."""
    C, K, _ = SOS.shape
    out = np.empty((C, x.shape[0]))
    for c in range(C):
        for s in range(x.shape[0]):
            out[c, s] = x[s]
        for k in range(K):
            b0, b1, b2, a0, a1, a2 = SOS[c, k, 0], SOS[c, k, 1], SOS[c, k, 2], SOS[c, k, 3], SOS[c, k, 4], SOS[c, k, 5]
            b0, b1, b2, a1, a2 = b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0
            z1 = z2 = 0.0
            for s in range(x.shape[0]):
                xs = out[c, s]
                y = b0 * xs + z1
                z1 = b1 * xs - a1 * y + z2
                z2 = b2 * xs - a2 * y
                out[c, s] = y
    return out


def cochlea(audio: np.ndarray, cfg: DigitsConfig):
    """Spike times (s) and units of the front end for one waveform."""
    comp = np.maximum(sos_bank(filter_bank(cfg.channels, cfg.f_lo, cfg.f_hi), np.ascontiguousarray(audio, float)), 0.0)
    comp **= cfg.exponent
    # the level of the loudest 1% of the compressed signal (estimated on every 7th sample) drives an encoder
    # to cfg.gain times threshold: speech fires, background noise 15 dB or more below it does not
    drive = cfg.gain * comp / max(float(np.quantile(comp[:, ::7], 0.99)), 1e-300)
    return lif_encode(drive, 1.0 / SAMPLE_RATE, cfg.tau_enc, 1e-3)


# ---------------------------------------------------------------------------
# the set
# ---------------------------------------------------------------------------


def speakers(cfg: DigitsConfig):
    """``(train, test)`` lists of ``(english voice, variant)``; test variants never occur in training."""
    rng = np.random.default_rng([cfg.seed, 7])
    train_pool = [(v, x) for x in VARIANTS if x not in TEST_VARIANTS for v in EN_VOICES]
    test_pool = [(v, x) for x in TEST_VARIANTS for v in EN_VOICES]
    tr = [train_pool[i] for i in rng.permutation(len(train_pool))[: cfg.train_speakers]]
    te = [test_pool[i] for i in rng.permutation(len(test_pool))[: cfg.test_speakers]]
    return tr, te


def utterance_plan(cfg: DigitsConfig, split: str) -> list:
    """Every utterance of a split with its synthesis parameters (the manifest), in file order."""
    tr, te = speakers(cfg)
    spk = tr if split == "train" else te
    offset = 0 if split == "train" else 10**6
    plan = []
    for s_i, (en_voice, variant) in enumerate(spk):
        for label in range(20):
            for rep in range(cfg.repeats):
                index = offset + len(plan)
                rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, index]))
                german = label >= 10
                plan.append({"index": index, "label": label, "key": KEYS[label],
                    "speaker": s_i + (0 if split == "train" else len(tr)),
                    "voice": ("de" if german else en_voice) + variant, "text": (GERMAN if german else ENGLISH)[label % 10],
                    "rate": int(rng.integers(120, 200)), "pitch": int(rng.integers(25, 75)), "range": int(rng.integers(20, 80)),
                    "amplitude": float(rng.uniform(0.6, 1.4)), "onset": float(rng.uniform(0.0, 0.1)),
                    "snr_db": float(rng.uniform(15.0, 40.0)), "noise_seed": int(rng.integers(2**31))})  # fmt: skip
    return plan


def render(item: dict, cfg: DigitsConfig):
    """Spike times (s, float32) and units (uint16) of one planned utterance, and its duration (s)."""
    audio = synthesize(item["text"], item["voice"], item["rate"], item["pitch"], item["range"])
    rms = math.sqrt(float(np.mean(audio**2))) if audio.size else 1.0
    audio = audio / max(rms, 1e-12) * 0.05 * item["amplitude"]
    audio = np.concatenate([np.zeros(int(item["onset"] * SAMPLE_RATE)), audio, np.zeros(int(0.05 * SAMPLE_RATE))])
    noise = np.random.default_rng(item["noise_seed"]).standard_normal(audio.size)
    audio = audio + noise * 0.05 * item["amplitude"] * 10.0 ** (-item["snr_db"] / 20.0)
    t, u = cochlea(audio, cfg)
    return t.astype(np.float32), u.astype(np.uint16), audio.size / SAMPLE_RATE


def _render_star(args):
    return render(*args)


def make(out_dir, cfg: DigitsConfig = DigitsConfig(), *, workers: int = 1, progress=True) -> dict:
    """Write ``train.h5``, ``test.h5`` (SHD layout) and ``manifest.json`` to ``out_dir``; returns a summary.

    Finished utterances are kept as they arrive in ``out_dir/.<split>.partial.h5``: after Ctrl-C (a
    ``KeyboardInterrupt`` at the next finished utterance, :mod:`refimpl.interrupt`) or a crash, the same
    call continues where it stopped, and the set is the same as an uninterrupted one's. A partial file
    made with other settings is started afresh. The directory is locked while the set is made.
    """
    from refimpl.io import atomic_h5, atomic_text, directory_lock

    out = Path(out_dir)
    summary = {"config": asdict(cfg), "splits": {}}
    t0 = time.perf_counter()
    # compile (or load) the kernels and the filters here, once: the forked workers inherit them
    sos_bank(filter_bank(cfg.channels, cfg.f_lo, cfg.f_hi), np.zeros(8))
    lif_encode(np.zeros((1, 8)), 1.0 / SAMPLE_RATE, cfg.tau_enc, 1e-3)
    with directory_lock(out):
        for split in ("train", "test"):
            plan = utterance_plan(cfg, split)
            results = _render_split(out / f".{split}.partial.h5", plan, cfg, workers, progress, split, t0)
            _write(out / f"{split}.h5", plan, results, cfg, atomic_h5)
            durations = [r[2] for r in results]
            summary["splits"][split] = {"samples": len(plan), "speakers": len({p["speaker"] for p in plan}),
                "duration_s": [float(np.min(durations)), float(np.median(durations)), float(np.max(durations))],
                "spikes_per_sample": float(np.mean([r[0].size for r in results]))}  # fmt: skip
            for item, r in zip(plan, results):
                item["duration_s"], item["n_spikes"] = r[2], int(r[0].size)
            summary.setdefault("manifest", {})[split] = plan
        summary["seconds"] = time.perf_counter() - t0
        atomic_text(out / "manifest.json", json.dumps(summary, indent=1, ensure_ascii=False))
        for split in ("train", "test"):
            (out / f".{split}.partial.h5").unlink(missing_ok=True)
    return summary


def _render_split(partial: Path, plan: list, cfg: DigitsConfig, workers: int, progress, split: str, t0: float) -> list:
    """Every utterance of ``plan`` rendered, those already in ``partial`` read back, the rest rendered and
    appended to it one by one (in plan order, so the finished ones are always a prefix of the plan)."""
    import multiprocessing as mp

    import h5py

    from refimpl.interrupt import poll

    key = json.dumps([asdict(cfg), split, len(plan)])
    results = []
    if partial.exists():
        try:
            with h5py.File(partial, "r") as f:
                if f.attrs["key"] == key:
                    n = int(f.attrs["done"])
                    results = [(f["times"][i], f["units"][i], float(f["duration"][i])) for i in range(n)]
        except (OSError, KeyError):  # unreadable (killed while it was written): start afresh
            results = []
    mode = "a" if results else "w"
    with h5py.File(partial, mode) as f:
        if mode == "w":
            f.attrs["key"], f.attrs["done"] = key, 0
            f.create_dataset("times", (0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.dtype(np.float32)))
            f.create_dataset("units", (0,), maxshape=(None,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
            f.create_dataset("duration", (0,), maxshape=(None,), dtype=np.float64)
        todo = [(item, cfg) for item in plan[len(results) :]]
        if todo:
            # eSpeak NG keeps state from one utterance to the next (its pitch flutter runs on), so every
            # utterance is rendered in a fresh process forked from this one, which never synthesizes: the set
            # is then the same for any number of workers (tests/test_digits.py)
            with mp.get_context("fork").Pool(workers, maxtasksperchild=1) as pool:
                for r in pool.imap(_render_star, todo, chunksize=1):
                    i = len(results)
                    for name, v in zip(("times", "units", "duration"), r):
                        f[name].resize((i + 1,))
                        f[name][i] = v
                    f.attrs["done"] = i + 1
                    f.flush()
                    results.append(r)
                    _report(progress, split, i + 1, len(plan), t0)
                    poll()  # Ctrl-C: stop here; what finished is in the partial file
    return results


def _report(progress, split, i, n, t0):
    if progress and (i == n or i % max(1, n // 20) == 0):
        print(f"\r{split}: {i}/{n} utterances ({time.perf_counter() - t0:.0f} s)", end="\n" if i == n else "",
            file=sys.stderr, flush=True)  # fmt: skip


def _write(path, plan, results, cfg, atomic_h5):
    import h5py

    with atomic_h5(path) as f:
        n = len(plan)
        st = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(np.float32)))
        su = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
        for i, (t, u, _) in enumerate(results):
            st[i], su[i] = t, u
        f.create_dataset("labels", data=np.array([p["label"] for p in plan], np.uint8))
        f.create_dataset("extra/speaker", data=np.array([p["speaker"] for p in plan], np.uint16))
        f.create_dataset(
            "extra/keys", data=np.array([k.encode("utf-8") for k in KEYS], dtype=object), dtype=h5py.string_dtype("utf-8")
        )
        f.create_dataset("extra/meta_info", data=json.dumps(asdict(cfg)), dtype=h5py.string_dtype("utf-8"))
