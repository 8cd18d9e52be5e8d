//! Content-defined (buzhash) and fixed-size chunking over whole buffers.
