"""`deepspeech-trainer prepare`: turn a folder (or s3:// prefix) of recordings into DeepSpeech CSVs.

Functional core (layouts, text, split, outputs: pure functions over names, text and numbers) and a thin
I/O shell (sources, convert, journal, upload, pipeline, cli). The audio libraries are an optional extra
(`deepspeech-trainer[prepare]`): the training image never imports this package.
"""
