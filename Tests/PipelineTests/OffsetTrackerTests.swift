import Pipeline
import Testing

@Suite("Offset tracker")
struct OffsetTrackerTests {
    func message(_ offset: Int64, partition: Int = 0) -> BusMessage {
        BusMessage(topic: "t", partition: partition, offset: offset, key: nil, headers: [], value: [], timestampMillis: 0)
    }

    @Test func commitsOnlyTheContiguousFinishedPrefix() {
        var t = OffsetTracker()
        for o in [0, 1, 2, 5] {
            let began = t.begin(message(Int64(o)))
            #expect(began)
        }
        let r1 = t.finish(message(1))
        #expect(r1 == nil)
        let r2 = t.finish(message(2))
        #expect(r2 == nil)
        let r3 = t.finish(message(0))
        #expect(r3?.offset == 2)
        let r4 = t.finish(message(5))
        #expect(r4?.offset == 5)
        #expect(t.inFlightCount == 0)
    }

    @Test func partitionsAreIndependent() {
        var t = OffsetTracker()
        let r5 = t.begin(message(0, partition: 0))
        #expect(r5)
        let r6 = t.begin(message(0, partition: 1))
        #expect(r6)
        let r7 = t.finish(message(0, partition: 1))
        #expect(r7?.partition == 1)
        let r8 = t.finish(message(0, partition: 0))
        #expect(r8?.partition == 0)
    }

    @Test func refusesOffsetsAlreadyTrackedOrCommitted() {
        var t = OffsetTracker()
        let r9 = t.begin(message(3))
        #expect(r9)
        let r10 = t.begin(message(3))
        #expect(!r10)
        let r11 = t.finish(message(3))
        #expect(r11?.offset == 3)
        let r12 = t.begin(message(3))
        #expect(!r12)
        let r13 = t.begin(message(1))
        #expect(!r13)
        let r14 = t.begin(message(4))
        #expect(r14)
    }
}
