// libFuzzer target for `CanonicalPath.canonicalize` (Sources/Pipeline/Canonical/CanonicalPath.swift,
// compiled into this module by build.sh).
//
// Invariants (a violation traps, which libFuzzer reports as a crash):
// - never crashes; refusals carry a non-empty one-sentence reason;
// - an accepted path's canonical form starts with "/", contains no "//", "/./" or "/../" and does
//   not end in "/." or "/..";
// - idempotent: canonicalize(canonicalize(x)) == canonicalize(x) (and it is not refused);
// - canonicalizeQuery never crashes and is idempotent too.

func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError("fuzz invariant violated: \(message())") }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = size > 0 && data != nil ? Array(UnsafeBufferPointer(start: data, count: size)) : []
    // Paths arrive as text; invalid UTF-8 becomes U+FFFD here (the canonicaliser must refuse or keep it stable).
    let raw = String(decoding: bytes, as: UTF8.self)
    for candidate in [raw, "/" + raw] {
        do {
            let once = try CanonicalPath.canonicalize(candidate)
            check(once.hasPrefix("/"), "\(once.debugDescription) does not start with /")
            check(!once.contains("//"), "\(once.debugDescription) contains //")
            check(!once.contains("/./"), "\(once.debugDescription) contains /./")
            check(!once.contains("/../"), "\(once.debugDescription) contains /../")
            check(!once.hasSuffix("/.") && !once.hasSuffix("/.."), "\(once.debugDescription) ends in a dot segment")
            do {
                let twice = try CanonicalPath.canonicalize(once)
                check(twice == once, "not idempotent: \(candidate.debugDescription) → \(once.debugDescription) → \(twice.debugDescription)")
            } catch {
                check(false, "the canonical form \(once.debugDescription) of \(candidate.debugDescription) is refused: \(error.reason)")
            }
        } catch {
            check(!error.reason.isEmpty, "empty refusal reason")
        }
    }
    do {
        let q = try CanonicalPath.canonicalizeQuery(raw)
        do {
            let q2 = try CanonicalPath.canonicalizeQuery(q)
            check(q2 == q, "query not idempotent: \(raw.debugDescription) → \(q.debugDescription) → \(q2.debugDescription)")
        } catch {
            check(false, "the canonical query \(q.debugDescription) is refused: \(error.reason)")
        }
    } catch {
        check(!error.reason.isEmpty, "empty refusal reason")
    }
    return 0
}
