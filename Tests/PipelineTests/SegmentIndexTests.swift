import BusContract
import Foundation
@testable import Pipeline
import Testing

/// A rolled segment keeps only every 64th position in memory: every read still finds the same
/// record, in any order, with several readers interleaved, dense or compacted.
@Suite("Segment sparse index")
struct SegmentIndexTests {
    static func path() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("sluice-segment-\(UUID().uuidString).log").path
    }

    static func record(_ i: Int64) -> LogRecord {
        // Sizes vary so positions are not a multiple of anything.
        LogRecord(timestampMillis: 1_000 + i, key: Array("k\(i)".utf8), headers: [], value: Array(repeating: UInt8(i & 0x7f), count: Int(i * 37 % 500)))
    }

    @Test("dense: every offset read the same before and after sealing, at random and by interleaved sequential readers")
    func dense() throws {
        let path = Self.path()
        defer { unlink(path) }
        let segment = try Segment(path: path, baseOffset: 1_000, mode: .tail, sync: false)
        let n: Int64 = 333
        for i in 0..<n { _ = try segment.append(Self.record(i)) }
        let before = try (1_000..<(1_000 + n)).map { try segment.read(atOrAfter: $0)! }
        segment.sealIndex()
        #expect(segment.count == Int(n))
        #expect(segment.lastOffset == 1_000 + n - 1)
        #expect(segment.sparse?.offsets.count == 6)
        #expect(try segment.read(atOrAfter: 1_000 + n) == nil)
        #expect(try segment.read(atOrAfter: 0)?.offset == 1_000)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let o = Int64.random(in: 1_000..<(1_000 + n), using: &rng)
            let got = try #require(try segment.read(atOrAfter: o))
            #expect(got.offset == o)
            #expect(got.record == before[Int(o - 1_000)].record)
        }
        // Three readers at different places, taking turns.
        var next: [Int64] = [1_000, 1_100, 1_250]
        while next.contains(where: { $0 < 1_000 + n }) {
            for r in next.indices where next[r] < 1_000 + n {
                let got = try #require(try segment.read(atOrAfter: next[r]))
                #expect(got.offset == next[r])
                #expect(got.record == Self.record(next[r] - 1_000))
                next[r] += 1
            }
        }
    }

    @Test("compacted: offsets with gaps, a read between records finds the next one")
    func compacted() throws {
        let path = Self.path()
        defer { unlink(path) }
        let offsets: [Int64] = (0..<200).map { Int64($0) * 3 + ($0 % 2 == 0 ? 0 : 1) }
        var bytes: [UInt8] = []
        for o in offsets {
            let payload = Self.record(o).encodedPayload()
            bytes += LogRecord.offsetFrame(payload: payload, payloadCRC: CRC32.checksum(payload), offset: o)
        }
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        let segment = try Segment(path: path, baseOffset: 0, mode: .sealed(nextBase: offsets.last! + 1), sync: false)
        segment.sealIndex()
        #expect(segment.isSparse)
        #expect(segment.count == offsets.count)
        #expect(segment.lastOffset == offsets.last)
        for target in 0...(offsets.last! + 1) {
            let expected = offsets.first { $0 >= target }
            let got = try segment.read(atOrAfter: target)
            #expect(got?.offset == expected)
            if let expected { #expect(got?.record == Self.record(expected)) }
        }
    }
}
