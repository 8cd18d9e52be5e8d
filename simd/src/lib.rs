//! Kernels with runtime CPU-feature dispatch and scalar references. Knows nothing of borg.
