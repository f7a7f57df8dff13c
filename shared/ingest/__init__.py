"""What gets indexed: import paths, uploads, text decoding and normalisation, and the items an index job reads."""
