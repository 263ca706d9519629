"""Hearing: the spoken digits (FSDD) and the log-mel front-end (``docs/audio.md``)."""
