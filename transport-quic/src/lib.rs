//! QUIC transport for actraft.
