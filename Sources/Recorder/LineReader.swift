#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a JSON-lines file in bounded chunks, line by line.
///
/// Guarantees:
/// - Memory is one chunk plus the longest line, whatever the file size (a day's shared
///   sessionless file can be large).
/// - Every non-empty line is passed once, without its newline, in file order; a last line
///   without a newline (a write torn by a crash) is passed too, and readers skip it if it
///   does not decode.
/// - Any read error is thrown with the path and `errno` text; nothing is skipped silently.
enum LineReader {
    static let chunkSize = 1 << 20

    static func forEachLine(ofFileAt path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw RecorderError("cannot open \(path): \(errnoText())") }
        defer { close(fd) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, chunkSize) }
            if n < 0 {
                if errno == EINTR { continue }
                throw RecorderError("cannot read \(path): \(errnoText())")
            }
            if n == 0 { break }
            buffer.append(contentsOf: chunk[0..<n])
            // Pass every complete line; keep the incomplete tail for the next chunk.
            var consumed = 0
            try buffer.withUnsafeBytes { all in
                guard let base = all.baseAddress else { return }
                var start = 0
                while start < all.count, let found = memchr(base + start, Int32(UInt8(ascii: "\n")), all.count - start) {
                    let newline = base.distance(to: UnsafeRawPointer(found))
                    if newline > start { try body(UnsafeRawBufferPointer(rebasing: all[start..<newline])) }
                    start = newline + 1
                }
                consumed = start
            }
            buffer.removeFirst(consumed)
        }
        if !buffer.isEmpty { try buffer.withUnsafeBytes { try body($0) } }
    }

    /// Whether `haystack` contains `needle` (`memchr` for the first byte, then `memcmp`).
    static func contains(_ haystack: UnsafeRawBufferPointer, _ needle: [UInt8]) -> Bool {
        guard let first = needle.first else { return true }
        guard haystack.count >= needle.count, let base = haystack.baseAddress else { return false }
        let last = haystack.count - needle.count  // the last offset where the needle can start
        return needle.withUnsafeBytes { n in
            var i = 0
            while i <= last, let found = memchr(base + i, Int32(first), last - i + 1) {
                let at = base.distance(to: UnsafeRawPointer(found))
                if memcmp(base + at, n.baseAddress!, needle.count) == 0 { return true }
                i = at + 1
            }
            return false
        }
    }
}
