"""Examples of using dlmia with your own code (importable as `examples.<module>`)."""
