"""DeepSpeech stand-in for tests (see README.md). It is not DeepSpeech and trains nothing."""
