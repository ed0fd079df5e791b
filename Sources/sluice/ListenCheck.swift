import Foundation
import Pipeline

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Start-up's check that the addresses a process will listen on are free, before any stage
/// starts (no topic created, no consumer joined, nothing half started).
///
/// Guarantees: each address is bound the way the servers bind it (the first address
/// `getaddrinfo` gives for the host, `SO_REUSEADDR`) and released at once; an address taken by
/// another socket is the one-line error `<key> <address> is in use`, any other bind failure
/// `<key> <address> cannot be listened on: <reason>`. Port 0 (an ephemeral port) is not checked.
/// Another process can still take an address between this check and the server's bind; the
/// server's own error then names it too.
enum ListenCheck {
    /// The `(key, address)` pairs a process running `stages` listens on: `listen` with the
    /// Ingress, `admin_listen` always (the Ingress serves it, or the operations server does).
    static func addresses(config: SluiceConfig, stages: [StageKind]) -> [(key: String, value: String)] {
        (stages.contains(.ingress) ? [("listen", config.listen)] : []) + [("admin_listen", config.adminListen)]
    }

    /// Throws a `CLIError` naming the first address that cannot be listened on.
    static func check(_ addresses: [(key: String, value: String)]) throws {
        for (key, value) in addresses {
            let address = try ListenAddress(parsing: value, key: key)
            guard address.port != 0 else { continue }
            if let problem = bindProblem(host: address.host, port: address.port) {
                throw CLIError("\(key) \(value) \(problem)")
            }
        }
    }

    /// nil when `host:port` can be bound now; else what stands in the way ("is in use", ...).
    static func bindProblem(host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(host, String(port), &hints, &list)
        guard resolved == 0, let first = list else {
            return "cannot be listened on: \(String(cString: gai_strerror(resolved)))"
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return "cannot be listened on: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            let code = errno
            return code == EADDRINUSE ? "is in use" : "cannot be listened on: \(String(cString: strerror(code)))"
        }
        return nil
    }
}
