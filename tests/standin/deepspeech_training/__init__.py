"""STAND-IN for DeepSpeech 0.7+'s `deepspeech_training` package (see ../README.md). Trains nothing."""
