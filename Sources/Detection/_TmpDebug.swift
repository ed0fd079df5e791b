// TEMPORARY (perf work) — remove before hand-off.
public enum _TmpDebug {
    public static func structural(_ b: [UInt8]) -> Int {
        var ev: [Event] = []
        b.withUnsafeBufferPointer { StructuralScanner.events($0, keywordCount: 0, minBase64: 16, into: &ev) }
        return ev.count
    }
    public static func b64(_ b: [UInt8]) -> Int {
        var ev: [Event] = []
        b.withUnsafeBufferPointer { p in StructuralScanner.cls.withUnsafeBufferPointer { c in StructuralScanner.base64Runs(p.baseAddress!, p.count, c.baseAddress!, kind: 0, minRun: 16, into: &ev) } }
        return ev.count
    }
    public static func fallbackKw(_ e: DetectionEngine, _ b: [UInt8]) -> Int {
        var ev: [Event] = []
        b.withUnsafeBufferPointer { e.fallback.keywordEvents($0, into: &ev) }
        return ev.count
    }
    public static func hs(_ e: DetectionEngine, _ b: [UInt8]) -> Int {
        var ev: [Event] = []
        b.withUnsafeBufferPointer { _ = e.hyperscan?.events($0, into: &ev) }
        return ev.count
    }
}
