"""Hearing: the spoken digits (FSDD), the log-mel front-end, waveform distortions (``docs/audio.md``)."""
