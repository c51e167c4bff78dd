"""Training NetL and NetR on CPU, resumable and reproducible."""
