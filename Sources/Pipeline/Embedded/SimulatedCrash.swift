import Synchronization

/// Test support: stops the embedded bus's file writes after a number of bytes, as if the process
/// were killed (kill -9) or the machine lost power in the middle of a write, or fails one write
/// as a full disk would.
///
/// Every write the bus makes to a log file (`Segment.append`, `Segment.truncate`) first asks
/// `allow(_:)` how many of its bytes it may write (a truncation counts as one byte).
/// - `.crash`: once the budget runs out, the write that ran out is cut where it ran out (a torn
///   frame is left on disk, nothing cleans it up) and every later write and truncation is
///   refused. The bus then reports errors; the test shuts it down (which writes nothing) and
///   reopens the directory, which sees exactly what a crash at that byte would have left.
/// - `.failOnce`: the write that would exceed the budget writes nothing and fails (an I/O
///   error); every later write succeeds.
///
/// Guarantees: with `.crash`, the bytes written before the cut are a prefix of what the bus meant
/// to write, in the order it wrote them, and after the cut no byte of any file changes.
final class SimulatedCrash: Sendable {
    enum Mode: Sendable {
        case crash
        case failOnce
    }

    private struct State {
        var left: Int
        var tripped = false
        var writes: [Int] = []
    }

    private let mode: Mode
    private let state: Mutex<State>

    /// A crash (or failure) once `bytes` bytes have been written (counting truncations as one byte each).
    init(afterBytes bytes: Int, mode: Mode = .crash) {
        self.mode = mode
        state = Mutex(State(left: max(0, bytes)))
    }

    /// How many of `count` bytes the caller may write now (`count`, until the budget runs out).
    func allow(_ count: Int) -> Int {
        state.withLock { s in
            s.writes.append(count)
            if count <= s.left {
                s.left -= count
                return count
            }
            s.tripped = true
            switch mode {
            case .crash:
                let granted = s.left
                s.left = 0
                return granted
            case .failOnce:
                s.left = Int.max
                return 0
            }
        }
    }

    /// Whether the crash (or the failure) has happened.
    var hasTripped: Bool { state.withLock { $0.tripped } }

    /// The size of every write asked for so far, in order (a truncation is 1), cut or not.
    var writes: [Int] { state.withLock { $0.writes } }

    /// The error a cut or failed write reports.
    static func error(_ path: String, wrote: Int, of count: Int) -> BusError {
        BusError(.io, "simulated crash or write failure: wrote \(wrote) of \(count) bytes to \(path)")
    }
}
