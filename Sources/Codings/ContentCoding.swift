/// An HTTP content coding (RFC 9110 §8.4.1) that Sluice can undo.
///
/// Guarantees: every case is decoded by a real library (zlib, libbrotlidec, libzstd) in `ContentCodings.decode`.
public enum ContentCoding: String, Sendable, Hashable, CaseIterable {
    /// gzip (RFC 1952), also spelled `x-gzip`. Every member is decoded.
    case gzip
    /// zlib-wrapped deflate (RFC 1950), or raw deflate (RFC 1951) as some servers send it.
    case deflate
    /// Brotli (RFC 7932).
    case br
    /// Zstandard (RFC 8878). Every frame is decoded.
    case zstd
}
