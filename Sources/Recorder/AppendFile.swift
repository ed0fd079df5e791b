import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Appends whole lines to a file opened with `O_APPEND`.
///
/// Guarantees:
/// - Each `append` is one `write(2)` call of whole lines (one line, or a batch of them) at the
///   end of the file, so writers in this process or another (all using `O_APPEND`) never
///   interleave inside a line on a local file system.
/// - If a write fails part-way, a newline is appended to close the torn fragment, so the
///   next line starts on its own line and readers can skip the fragment.
/// - The file is created with mode 0600 (audit metadata is not for every local user), a
///   parent directory created on request with mode 0700.
///
/// Sendable: the only state is the immutable descriptor; concurrent `write(2)` calls on an
/// `O_APPEND` descriptor are safe.
final class AppendFile: Sendable {
    let path: String
    private let fd: Int32

    /// Opens (creating) the file at `path`. With `creatingDirectory`, a missing parent directory
    /// is created (mode 0700, one level) and the open retried once.
    init(path: String, creatingDirectory: Bool = false) throws {
        self.path = path
        var fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        if fd < 0 && errno == ENOENT && creatingDirectory {
            let parent = (path as NSString).deletingLastPathComponent
            guard mkdir(parent, 0o700) == 0 || errno == EEXIST else {
                throw RecorderError("cannot create directory \(parent): \(errnoText())")
            }
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw RecorderError("cannot open \(path) for appending: \(errnoText())") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Appends `line` (one or more lines, ending with a newline) in one write.
    func append(_ line: [UInt8]) throws {
        var written = 0
        while written < line.count {
            let n = line.withUnsafeBytes { raw in
                write(fd, raw.baseAddress!.advanced(by: written), line.count - written)
            }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = errnoText()
                if written > 0 { terminateTornLine() }
                throw RecorderError("cannot append to \(path): \(reason)")
            }
            if n == 0 {
                if written > 0 { terminateTornLine() }
                throw RecorderError("cannot append to \(path): short write")
            }
            written += n
        }
    }

    /// Best effort: ends a partly written line so the next record starts on a fresh line.
    private func terminateTornLine() {
        var newline = UInt8(ascii: "\n")
        _ = write(fd, &newline, 1)
    }

    /// Appends `line` (one or more whole lines) to the file at `path`, opening and closing it around the write
    /// (and, with `creatingDirectory`, creating its missing parent directory).
    static func append(_ line: [UInt8], toFileAt path: String, creatingDirectory: Bool = false) throws {
        try AppendFile(path: path, creatingDirectory: creatingDirectory).append(line)
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
