import Codings

/// The public scanning and masking API.
extension DetectionEngine {
    /// Scans `bytes` and returns non-overlapping findings sorted by `start`.
    ///
    /// Never throws and never traps on any input. When a decoder limit is hit (a
    /// decompression bomb, or nesting that exceeds the expansion budget) or a
    /// compressed body is corrupt, or the matchers' work budget is spent (`MatchWork`), the
    /// result contains a finding with rule id `decode-limit-exceeded` / `undecodable-body` /
    /// `inspection-limit-exceeded` spanning the whole input, so that
    /// policy fails closed. Use ``scanThrowing(_:context:)`` to get the error instead.
    public func scan(_ bytes: [UInt8], context: ScanContext = .default) -> [Finding] {
        do { return try scanThrowing(bytes, context: context) } catch {
            return failClosed(error, length: bytes.count)
        }
    }

    /// What ``scan(_:context:)`` returns for an input of `length` bytes whose scan threw `error`:
    /// one critical finding over all of it (`decode-limit-exceeded`, `inspection-limit-exceeded`
    /// or `undecodable-body`). For callers of ``scanThrowing(_:context:)`` that need the findings
    /// without scanning again.
    public func failClosed(_ error: DetectionError, length: Int) -> [Finding] {
        let rule = error.failClosedRule
        return [Finding(rule: rule, ruleClass: .credential, severity: .critical, start: 0, end: length,
                        confidence: 1, fingerprint: hmac.fingerprint(Array(rule.utf8)), decodedVia: [])]
    }

    /// Like ``scan(_:context:)`` but throws `DetectionError` on decoder limits or undecodable content codings.
    /// With content codings, the body is decoded (every layer, through `Codings`) and scanned, and every
    /// finding spans the whole (encoded) input.
    public func scanThrowing(_ bytes: [UInt8], context: ScanContext = .default) throws(DetectionError) -> [Finding] {
        if context.contentCodings.isEmpty { return try scanIdentity(bytes, context: context) }
        let decoded = try decodeContent(bytes, codings: context.contentCodings)
        var inner = context
        inner.contentCodings = []
        let found = try scanIdentity(decoded, context: inner)
        let layers = context.contentCodings.reversed().map(\.rawValue)
        return found.map { f in
            var g = f
            g.start = 0
            g.end = bytes.count
            g.decodedVia.insert(contentsOf: layers, at: 0)
            return g
        }
    }

    /// Replaces each finding's span with `[MASKED:<rule-id>:<fingerprint>]`. Overlapping or
    /// identical spans are merged (the first finding by start names the mask). Findings with
    /// out-of-range offsets are ignored. Inside a JSON string the result stays valid JSON.
    public func mask(_ bytes: [UInt8], findings: [Finding]) -> [UInt8] {
        Masking.apply(bytes, findings: findings)
    }

    /// Scans and masks in one call. With content codings the body is decoded (every layer), scanned
    /// and masked, and the **decoded** body is returned: the caller must then forward it with
    /// `Content-Encoding` removed (identity) and `Content-Length` updated. In that case finding
    /// offsets refer to the decoded body. Without codings, offsets refer to `bytes`.
    public func scanAndMask(_ bytes: [UInt8], context: ScanContext = .default) throws(DetectionError) -> (masked: [UInt8], findings: [Finding]) {
        var body = bytes
        var ctx = context
        if !context.contentCodings.isEmpty {
            body = try decodeContent(bytes, codings: context.contentCodings)
            ctx.contentCodings = []
        }
        let findings = try scanIdentity(body, context: ctx)
        return (Masking.apply(body, findings: findings), findings)
    }

    /// Undoes `codings` with `Codings`, each layer capped at `options.maxDecompressedBytes`.
    func decodeContent(_ bytes: [UInt8], codings: [ContentCoding]) throws(DetectionError) -> [UInt8] {
        do {
            return try ContentCodings.decode(bytes, codings: codings, maxOutput: options.maxDecompressedBytes)
        } catch {
            throw DetectionError(error, codings: codings)
        }
    }

    func scanIdentity(_ bytes: [UInt8], context: ScanContext) throws(DetectionError) -> [Finding] {
        let cands = try candidates(bytes, context: context, explain: false)
        if allow.isEmpty { return resolve(cands) }
        let (kept, allowed) = split(cands)
        if let observe = allowObserver {
            for c in allowed { observe(AllowedFinding(finding: finding(c), entry: c.allowedBy ?? -1)) }
        }
        return kept.map(finding)
    }

    /// Scans and resolves: the candidates reported, and those the allow-list silenced.
    func scanResolved(_ bytes: [UInt8], context: ScanContext, explain: Bool) throws(DetectionError)
        -> (kept: [Candidate], allowed: [Candidate]) {
        split(try candidates(bytes, context: context, explain: explain))
    }

    /// Resolves the candidates the allow-list silenced apart from the others (each set among
    /// itself): silenced candidates are set aside before resolution, so they never hide another
    /// rule's finding.
    func split(_ cands: [Candidate]) -> (kept: [Candidate], allowed: [Candidate]) {
        if allow.isEmpty { return (resolveCandidates(cands), []) }
        var rest = cands
        var allowed: [Candidate] = []
        rest.removeAll { c in
            if c.allowedBy != nil { allowed.append(c); return true }
            return false
        }
        return (resolveCandidates(rest), resolveCandidates(allowed))
    }

    /// A spare scratch from the pool, or a new one; with a Hyperscan slot whenever one can be had
    /// (nil: this scan's levels use the fallback first pass, with the same findings).
    func takeScratch() -> ScanScratch {
        var s = scratchPool.take() ?? ScanScratch()
        if s.slot == nil, let hs = hyperscan { s.slot = hs.makeSlot() }
        return s
    }

    /// Every candidate of `bytes`, unresolved, in the coordinates of `bytes`.
    func candidates(_ bytes: [UInt8], context: ScanContext, explain: Bool) throws(DetectionError) -> [Candidate] {
        guard context.credentials || context.pii else { return [] }
        var buf = bytes
        var shift = 0
        if case .header(let name) = context.hint {
            let prefix = Array((name + ": ").utf8)
            buf = prefix + bytes
            shift = prefix.count
        }
        let budget = decodeBudget(buf.count)
        let work = MatchWork.budget(buf.count)
        var state = ScanState(ctx: context, budget: budget, work: work, explain: explain, scratch: takeScratch())
        defer { scratchPool.put(state.takeScratch()) }
        var cands = buf.withUnsafeBufferPointer { scanLevel($0, depth: 0, state: &state) }
        if state.limitExceeded {
            throw DetectionError.decodeLimitExceeded(decoder: "nested decoding", limit: budget)
        }
        if state.workExceeded { throw DetectionError.inspectionLimitExceeded(limit: work) }
        if shift > 0 {
            cands = cands.compactMap { c in
                var d = c
                d.start = max(0, c.start - shift)
                d.end = c.end - shift
                return d.end > d.start ? d : nil
            }
        }
        return cands
    }

    /// Decoded bytes a scan of `count` bytes may produce over all its nested levels.
    func decodeBudget(_ count: Int) -> Int { count * max(1, options.expansionFactor) + (1 << 20) }

    /// Bytes the matchers may read per input byte (over a 1 MiB floor) before a scan fails closed.
    public static var matcherWorkFactor: Int { MatchWork.factor }

    /// How much of the matchers' work budget (`MatchWork`) a scan of `bytes` spends, in bytes
    /// read, and the budget: for benchmarks and for tuning the budget on real traffic. `spent`
    /// stops growing at the point where the scan would fail closed (`spent > budget`).
    public func matcherWork(_ bytes: [UInt8], context: ScanContext = .default) -> (spent: Int, budget: Int) {
        let work = MatchWork.budget(bytes.count)
        var state = ScanState(ctx: context, budget: decodeBudget(bytes.count), work: work, scratch: takeScratch())
        defer { scratchPool.put(state.takeScratch()) }
        _ = bytes.withUnsafeBufferPointer { scanLevel($0, depth: 0, state: &state) }
        return (work - state.work, work)
    }

    /// Scans like ``scan(_:context:)`` and says, per finding, why it was reported: the rule, the
    /// decoded view, the checks it passed, the rules it outranked. Also lists the findings the
    /// allow-list silenced (`allowedBy` set). The reported findings are exactly `scan`'s.
    public func explain(_ bytes: [UInt8], context: ScanContext = .default) -> [Explanation] {
        do {
            var inner = context
            var body = bytes
            if !context.contentCodings.isEmpty {
                body = try decodeContent(bytes, codings: context.contentCodings)
                inner.contentCodings = []
            }
            let (kept, allowed) = try scanResolved(body, context: inner, explain: true)
            let layers = context.contentCodings.reversed().map(\.rawValue)
            return (kept + allowed).map { c in
                var e = explanation(c)
                if !context.contentCodings.isEmpty {
                    e.finding.start = 0
                    e.finding.end = bytes.count
                    e.finding.decodedVia.insert(contentsOf: layers, at: 0)
                    e.view = e.finding.decodedVia.joined(separator: " > ")
                }
                return e
            }
        } catch {
            // As `scan`: one finding over the whole input, so that policy fails closed.
            return scan(bytes, context: context).map { f in
                Explanation(finding: f, title: "The input could not be decoded within limits", method: "\(error)",
                            keyword: nil, view: "raw bytes", length: bytes.count, entropy: 0, minEntropy: 0, checksum: nil,
                            checks: [], outranked: [], allowedBy: nil)
            }
        }
    }

    func explanation(_ c: Candidate) -> Explanation {
        let r = rules[c.rule]
        let f = finding(c)
        let ev = c.evidence
        return Explanation(
            finding: f, title: r.title, method: r.method, keyword: ev?.keyword.map { String(decoding: $0, as: UTF8.self) },
            view: f.decodedVia.isEmpty ? "raw bytes" : f.decodedVia.joined(separator: " > "),
            length: ev?.length ?? 0, entropy: ev?.entropy ?? 0, minEntropy: r.minEntropy,
            checksum: r.checksum(failed: c.checksumFailed), checks: r.checks,
            outranked: (ev?.outranked ?? []).map { rules[$0].id }, allowedBy: c.allowedBy,
            allowReason: c.allowedBy.flatMap { allow.entries[$0].reason })
    }
}

/// A finding the allow-list silenced, and the entry (`detection.allow[entry]`) that did.
public struct AllowedFinding: Sendable, Hashable {
    public var finding: Finding
    public var entry: Int
}
