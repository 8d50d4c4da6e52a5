//! Whole-system tests live in `tests/it`; this package also builds `e2e-worker`, a worker binary the tests can start as real processes.
