"""Data regimes for quality mapping: paired, weakly-paired, unpaired and video, plus the demo sets."""
