//! Include/exclude patterns (borg help patterns).
