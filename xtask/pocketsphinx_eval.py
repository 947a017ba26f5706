"""CMU PocketSphinx on hark's free-form evaluation audio: the measuring stick
of `cargo xtask bench` (as PyTorch is for training speed), not part of hark.

Reads a hark manifest, decodes every utterance of the chosen split whose
`text` tag is free-form with PocketSphinx 5 and its shipped US English model
(acoustic model, cmudict, generic 3-gram LM), and writes one JSON line per
utterance: {"id", "text", "decode_s"}. Scoring is hark's (`hark eval --peer`),
so both recognizers are measured by the same code on the same audio.

usage: python pocketsphinx_eval.py MANIFEST OUT.jsonl [--split test] [--jobs N]
"""

import argparse
import json
import multiprocessing
import os
import sys
import time
import wave

_decoder = None


def _init():
    global _decoder
    from pocketsphinx import Config, Decoder

    config = Config(loglevel="FATAL")  # default: the shipped en-us model, LM and dictionary
    _decoder = Decoder(config)


def _decode(item):
    uid, path = item
    try:
        with wave.open(path, "rb") as w:
            if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
                return {"id": uid, "error": f"{path}: not 16 kHz mono PCM16"}
            pcm = w.readframes(w.getnframes())
    except (OSError, wave.Error) as e:
        return {"id": uid, "error": f"{path}: {e}"}
    start = time.perf_counter()
    _decoder.start_utt()
    _decoder.process_raw(pcm, full_utt=True)
    _decoder.end_utt()
    hyp = _decoder.hyp()
    text = hyp.hypstr if hyp is not None else ""
    return {"id": uid, "text": text, "decode_s": round(time.perf_counter() - start, 4)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("manifest")
    p.add_argument("out")
    p.add_argument("--split", default="test")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    a = p.parse_args()
    root = os.path.dirname(os.path.abspath(a.manifest))
    items = []
    with open(a.manifest) as f:
        for line in f:
            if not line.strip():
                continue
            u = json.loads(line)
            if u["split"] == a.split and u.get("tags", {}).get("text", "").startswith("freeform"):
                items.append((u["id"], os.path.join(root, u["audio"])))
    if not items:
        sys.exit(f"{a.manifest} has no free-form {a.split} utterances; synthesize them with "
                 f"`hark data synth --preset standard --splits {a.split}`")
    started = time.perf_counter()
    with multiprocessing.Pool(a.jobs, initializer=_init) as pool, open(a.out + ".partial", "w") as out:
        for r in pool.imap(_decode, items, chunksize=8):
            out.write(json.dumps(r) + "\n")
    os.replace(a.out + ".partial", a.out)
    print(f"pocketsphinx: {len(items)} utterances in {time.perf_counter() - started:.1f} s -> {a.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
