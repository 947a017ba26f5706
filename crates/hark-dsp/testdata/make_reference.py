"""Writes librosa_logmel.json: the independent reference for hark-dsp's log-mel.

Run from this folder: `python3 make_reference.py` (librosa 0.11, numpy, soundfile).
query.wav was made with: espeak-ng -v en-us -s 160 "weather in lisbon tomorrow" -w q.wav
                         sox q.wav -r 16000 -c 1 -b 16 query.wav
The settings mirror hark_dsp::LogMelConfig::default() and the conventions in
crates/hark-dsp/src/mel.rs; only the first 0.5 s is kept to keep the fixture small.
"""
import json

import librosa
import numpy as np
import soundfile as sf

samples, rate = sf.read("query.wav", dtype="float32")
assert rate == 16000, rate
samples = samples[:8000]
mel = librosa.feature.melspectrogram(
    y=samples.astype(np.float64),
    sr=16000,
    n_fft=400,
    hop_length=160,
    win_length=400,
    window="hann",
    center=False,
    power=2.0,
    n_mels=80,
    fmin=20.0,
    fmax=7600.0,
    htk=True,
    norm="slaney",
)
logmel = np.log(np.maximum(mel, 1e-10)).T  # [frames, mels]
with open("librosa_logmel.json", "w") as f:
    json.dump(
        {
            "librosa_version": librosa.__version__,
            "samples": 8000,
            "frames": int(logmel.shape[0]),
            "mels": int(logmel.shape[1]),
            "values": [round(float(v), 6) for v in logmel.reshape(-1)],
        },
        f,
    )
print("frames", logmel.shape)
