//! Whole-system tests live in `tests/it`; this package also builds `e2e-api` and `e2e-worker`,
//! the two binaries, so that its tests can start them as real processes.
