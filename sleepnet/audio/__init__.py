"""Hearing: the spoken-digit data (FSDD), the log-mel front-end and waveform distortions (``docs/audio.md``)."""
