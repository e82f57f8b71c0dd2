"""Transcribe one WAV with an exported model, in the engine's own interpreter (DST_TF_PYTHON).

The inference packages (`deepspeech` for .pb/.pbmm, `stt` or `deepspeech-tflite` for .tflite) have wheels
only for the engines' old Pythons, never for the supervisor's, so the trainer runs this file with the
engine's interpreter and reads one JSON line from its stdout. CPython 3.6 to 3.8, standard library plus
numpy and the inference package.

usage: smoke_test.py MODEL WAV SAMPLE_RATE
"""

import json
import sys
import time
import wave


def _model_class(model_path):
    # Coqui's `stt` loads TFLite only; DeepSpeech's `deepspeech` loads .pb (its tflite build, .tflite).
    order = ("stt", "deepspeech") if model_path.endswith(".tflite") else ("deepspeech", "stt")
    for name in order:
        try:
            return __import__(name).Model, name
        except ImportError:
            continue
    raise RuntimeError("no inference package (stt or deepspeech) is importable in " + sys.executable)


def main(argv):
    model_path, wav_path, sample_rate = argv[1], argv[2], int(argv[3])
    import numpy as np

    model_class, package = _model_class(model_path)
    started = time.monotonic()
    try:
        model = model_class(model_path)
    except TypeError:  # DeepSpeech 0.6's client: Model(path, beam_width)
        model = model_class(model_path, 500)
    if hasattr(model, "sampleRate") and model.sampleRate() != sample_rate:
        raise RuntimeError("model expects {} Hz, training used {} Hz".format(model.sampleRate(), sample_rate))
    with wave.open(wav_path, "rb") as fh:
        audio = np.frombuffer(fh.readframes(fh.getnframes()), np.int16)
    text = model.stt(audio)
    if not isinstance(text, str):
        raise RuntimeError("stt returned {}".format(type(text).__name__))
    result = {"transcript": text, "seconds": round(time.monotonic() - started, 3), "package": package}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
