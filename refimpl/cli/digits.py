"""``refimpl digits make``: synthetic spoken digits in the SHD layout (docs/digits.md)."""

from __future__ import annotations

HEAVY = ("numpy", "numba", "scipy.signal", "h5py")


def add_parser(sub) -> list:
    p = sub.add_parser(
        "digits",
        help="synthesize spoken digits in the SHD layout, offline (docs/digits.md)",
        description="Write train.h5, test.h5 (the layout of the Spiking Heidelberg Digits) and manifest.json: "
        "the digits 0-9 in English and German spoken by eSpeak NG voices (the optional extra 'digits'), "
        "through an ERB gammatone bank and LIF encoders. Test speakers use voice variants no training "
        "speaker has.",
    )
    sp = p.add_subparsers(dest="digits_command", required=True)
    m = sp.add_parser("make", help="generate a set")
    m.add_argument("out_dir", help="directory to write train.h5, test.h5 and manifest.json into")
    m.add_argument("--small", action="store_true", help="3 training and 1 test speaker, 1 utterance each, 16 channels")
    m.add_argument("--seed", type=int, default=0, help="seed of the speakers and of every utterance")
    m.add_argument("--channels", type=int, default=None, help="channels of the filter bank (default 700, 16 with --small)")
    m.add_argument("--repeats", type=int, default=None, help="utterances per speaker and class (default 12, 1 with --small)")
    m.add_argument("--workers", type=int, default=2, help="processes (the set is the same for any number)")
    m.add_argument("--force", action="store_true", help="overwrite a set already in OUT_DIR")
    return ["digits"]


def run(args) -> int:
    import dataclasses
    import sys
    from pathlib import Path

    from refimpl.cli import UsageError
    from refimpl.io import check_writable
    from refimpl.tasks import digits

    base = digits.SMALL if args.small else digits.DigitsConfig()
    changes = {k: v for k, v in (("seed", args.seed), ("channels", args.channels), ("repeats", args.repeats)) if v is not None}
    try:
        cfg = dataclasses.replace(base, **changes)
    except ValueError as exc:
        raise UsageError(f"--{str(exc)}") from None
    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if not digits.espeak_available():
        raise UsageError("the spoken-digits generator needs the optional extra: pip install -e '.[digits]'")
    try:
        check_writable(args.out_dir, "out_dir", directory=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out = Path(args.out_dir)
    if (out / "manifest.json").exists() and not args.force:
        raise UsageError(f"{out} already holds a set (manifest.json); use --force to overwrite it")
    try:
        s = digits.make(out, cfg, workers=args.workers)
    except KeyboardInterrupt:
        print(f"refimpl digits make: interrupted; the finished utterances are kept in {out}/.*.partial.h5; "
            "run the same command again to continue", file=sys.stderr)  # fmt: skip
        return 130
    for split, d in s["splits"].items():
        print(f"{split}: {d['samples']} samples, {d['speakers']} speakers, durations {d['duration_s'][0]:.2f} / "
            f"{d['duration_s'][1]:.2f} / {d['duration_s'][2]:.2f} s (min / median / max), "
            f"{d['spikes_per_sample']:.0f} spikes per sample")  # fmt: skip
    print(f"wrote {out / 'train.h5'}, {out / 'test.h5'}, {out / 'manifest.json'} in {s['seconds']:.1f} s")
    return 0
