//! Compression codecs with borg's 2-byte headers, `auto` and `obfuscate`.
