//! borg base, config, cache, security and keys directories.
