//! Benchmarks of gofer; see the binaries in `src/bin`.
