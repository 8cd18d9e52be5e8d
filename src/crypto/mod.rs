//! Keys, envelopes, id functions and TAM.
