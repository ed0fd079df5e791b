import Pipeline
import Testing

/// `ReadinessBoard`: what `/readyz` decides from the checks the stages set.
@Suite struct ReadinessBoardTests {
    struct Row: Sendable, CustomStringConvertible {
        var name: String
        /// (check, kind, ready)
        var checks: [(String, ReadinessBoard.Kind, Bool)]
        var dependenciesGate: Bool
        var ready: Bool
        var description: String { name }
    }

    static let rows: [Row] = [
        Row(name: "no check yet: never ready", checks: [], dependenciesGate: true, ready: false),
        Row(name: "no check yet, caller process", checks: [], dependenciesGate: false, ready: false),
        Row(name: "one stage ready", checks: [("inspector", .stage, true)], dependenciesGate: true, ready: true),
        Row(name: "one stage not ready", checks: [("inspector", .stage, false)], dependenciesGate: true, ready: false),
        Row(name: "a stage not ready gates a caller process too",
            checks: [("ingress", .stage, true), ("forwarder", .stage, false)], dependenciesGate: false, ready: false),
        Row(name: "upstream down gates a forwarder-only process",
            checks: [("forwarder", .stage, true), ("upstream:a", .dependency, false)], dependenciesGate: true, ready: false),
        Row(name: "upstream down does not gate a process with the Ingress",
            checks: [("ingress", .stage, true), ("forwarder", .stage, true), ("upstream:a", .dependency, false)],
            dependenciesGate: false, ready: true),
        Row(name: "only dependencies, all up", checks: [("sink:x", .dependency, true)], dependenciesGate: true, ready: true),
        Row(name: "every check ready", checks: [("recorder", .stage, true), ("sink:x", .dependency, true), ("recordings-store", .dependency, true)],
            dependenciesGate: true, ready: true),
    ]

    @Test(arguments: rows)
    func decides(_ row: Row) {
        let board = ReadinessBoard(dependenciesGate: row.dependenciesGate)
        for (name, kind, ready) in row.checks { board.set(name, kind: kind, ready: ready, detail: "d-\(name)") }
        let report = board.report
        #expect(report.ready == row.ready)
        #expect(report.checks.map(\.name) == row.checks.map(\.0).sorted())
        for check in report.checks {
            #expect(check.gates == (check.kind == .stage || row.dependenciesGate))
            #expect(check.detail == "d-\(check.name)")
        }
    }

    @Test func aCheckIsUpdatedInPlace() {
        let board = ReadinessBoard()
        board.set("inspector", ready: false, detail: "joining")
        #expect(!board.report.ready)
        board.set("inspector", ready: true, detail: "member")
        #expect(board.report.ready)
        #expect(board.report.checks.count == 1)
        #expect(board.check("inspector")?.detail == "member")
        board.set("inspector", ready: false, detail: "stopped")
        #expect(!board.report.ready)
        #expect(board.check("nothing") == nil)
    }

    /// A stage announced at start-up gates the board until it reports, even when a dependency
    /// (an upstream probed first) is already up; `expect` never overwrites what a stage set.
    @Test func anExpectedStageGatesUntilItReports() {
        let board = ReadinessBoard(dependenciesGate: true)
        board.expect("forwarder")
        #expect(board.check("forwarder")?.ready == false)
        #expect(board.check("forwarder")?.detail == "starting")
        #expect(board.check("forwarder")?.gates == true)
        board.set("upstream:billing", kind: .dependency, ready: true, detail: "reachable")
        #expect(!board.report.ready, "ready before the stage joined its group")
        board.set("forwarder", ready: true, detail: "member")
        #expect(board.report.ready)
        board.expect("forwarder")
        #expect(board.check("forwarder")?.ready == true, "expect overwrote the stage's own state")
        #expect(board.report.ready)
    }
}
