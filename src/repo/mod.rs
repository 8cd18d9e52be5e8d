//! The Repository trait and its backends.
