// Entry point of the independent quality corpus.

public enum QualityCorpus {
    /// Positive variants per (format, carrier) pair: one or two, alternating, so every pair is
    /// covered and the corpus stays near 1.5 MB.
    static func variants(_ fi: Int, _ ci: Int) -> Int { 1 + (fi + ci) % 2 }

    public static func generate(seed: UInt64 = 1) -> [CorpusPayload] {
        var out: [CorpusPayload] = []
        var positives = 0
        for (fi, (format, gen)) in CorpusFormats.all.enumerated() {
            for (ci, (carrier, place)) in CorpusCarriers.all.enumerated() {
                var n = 0
                var attempt = 0
                let want = variants(fi, ci)
                while n < want && attempt < want * 2 {
                    // A fresh stream per (format, carrier, attempt) keeps ids stable when lists grow.
                    var r = CorpusRNG(seed: seed &* 0x1000_0000_01B3 ^ UInt64(fi) << 40 ^ UInt64(ci) << 20 ^ UInt64(attempt))
                    _ = r.next()
                    attempt += 1
                    var item = gen(&r)
                    if r.int(3) == 0 {
                        // Mix in a look-alike, as real configs do (commit shas, digests, ids next to keys).
                        let (name, _, ng) = CorpusNegatives.all[r.int(CorpusNegatives.all.count)]
                        let (k, v) = ng(&r)
                        if !item.fields.contains(where: { $0.key == k }) {
                            item.fields.append(CorpusField(key: k, val: CorpusDoc(v)))
                            item.negatives.append(name)
                        }
                    }
                    guard let doc = place(item, &r) else { continue }
                    out.append(doc.render(id: "\(carrier)/\(format)/\(n)", carrier: carrier, negatives: item.negatives))
                    n += 1
                    positives += 1
                }
            }
        }
        // Several credentials in one file or call, as real .env files and manifests hold them.
        let multiCarriers = ["tool-call-json", "nested-json-string", "yaml-ci", "k8s-secret", "dotenv", "base64-blob"]
        for (ci, (carrier, place)) in CorpusCarriers.all.enumerated() where multiCarriers.contains(carrier) {
            for n in 0..<12 {
                var r = CorpusRNG(seed: (seed ^ 0x5EED_0F_3A11) &* 0x1000_0000_01B3 ^ UInt64(ci) << 32 ^ UInt64(n))
                _ = r.next()
                var merged: CorpusItem? = nil
                for _ in 0..<r.int(2...4) {
                    let it = CorpusFormats.all[r.int(CorpusFormats.all.count)].1(&r)
                    if merged == nil { merged = it; continue }
                    for f in it.fields where !merged!.fields.contains(where: { $0.key == f.key }) { merged!.fields.append(f) }
                }
                guard let item = merged, let doc = place(item, &r) else { continue }
                out.append(doc.render(id: "\(carrier)/multi/\(n)", carrier: carrier, negatives: item.negatives))
                positives += 1
            }
        }
        // At least as many hard-negative payloads as positive ones, spread over the carriers.
        let perCarrier = (positives + CorpusCarriers.all.count - 1) / CorpusCarriers.all.count + 8
        for (ci, (carrier, place)) in CorpusCarriers.all.enumerated() {
            var n = 0
            var attempt = 0
            while n < perCarrier && attempt < perCarrier * 3 {
                var r = CorpusRNG(seed: (seed ^ 0xDEAD_BEEF_CAFE) &* 0x1000_0000_01B3 ^ UInt64(ci) << 32 ^ UInt64(attempt))
                _ = r.next()
                attempt += 1
                let item = CorpusNegatives.item(&r)
                guard let doc = place(item, &r) else { continue }
                out.append(doc.render(id: "\(carrier)/negative/\(n)", carrier: carrier, negatives: item.negatives))
                n += 1
            }
        }
        return out
    }
}
