"""Music side of muvi: scores on a beat grid, the multi-stem roll the model generates, MIDI,
keys, the training corpus."""
