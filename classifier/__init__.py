"""The genre engine: decoding, spectrogram chunks, the musicnn CNN, the genre head and tags."""
