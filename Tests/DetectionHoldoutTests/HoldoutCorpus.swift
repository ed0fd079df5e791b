import Foundation

/// The held-out corpus: every credential format in a rotation of carriers, each payload padded
/// with ordinary and hard-negative items, plus at least as many payloads that hold no secret.
enum HoldoutCorpus {
    static func generate(seed: UInt64, perFormat: Int = 24) -> [HoldoutPayload] {
        var r = HoldoutRng(seed: seed)
        let formats = HoldoutFormats.all()
        let carriers = HoldoutCarriers.all()
        let shapes = HoldoutNegatives.shapes()
        let documents = HoldoutDocuments.all()
        var out: [HoldoutPayload] = []

        func fillers(_ n: Int, negativeShare: Double) -> [Item] {
            (0..<n).map { _ in r.chance(negativeShare) ? r.pick(shapes).make(&r) : HoldoutNegatives.plain(&r) }
        }
        func mix(_ cred: [Item], _ extra: [Item]) -> [Item] {
            var items = cred
            for e in extra { items.insert(e, at: r.int(items.count + 1)) }
            return items
        }

        for (fi, format) in formats.enumerated() {
            for k in 0..<perFormat {
                let cred = format.make(&r)
                var ci = (fi * 7 + k) % carriers.count
                while cred.items.contains(where: { $0.value.isMultiline }) && !carriers[ci].acceptsMultiline { ci = (ci + 1) % carriers.count }
                let carrier = carriers[ci]
                let extra = fillers(r.int(0...3), negativeShare: 0.5)
                let items = mix(cred.items, extra)
                let doc = carrier.build(&r, cred, items)
                let (bytes, labels) = render(doc)
                out.append(HoldoutPayload(id: "pos-\(format.name)-\(k)", carrier: carrier.name, bytes: bytes, labels: labels,
                                          negatives: extra.compactMap(\.negative)))
            }
        }

        let positives = out.count
        for i in 0..<positives {
            if i % 2 == 0 {
                let carrier = carriers[(i / 2) % carriers.count]
                let items = fillers(r.int(2...6), negativeShare: 0.85)
                let (bytes, labels) = render(carrier.build(&r, nil, items))
                out.append(HoldoutPayload(id: "neg-\(i)", carrier: carrier.name, bytes: bytes, labels: labels,
                                          negatives: items.compactMap(\.negative)))
            } else {
                let document = documents[(i / 2) % documents.count]
                let text = document.make(&r)
                out.append(HoldoutPayload(id: "neg-\(i)", carrier: "doc:" + document.name, bytes: Array(text.utf8), labels: [],
                                          negatives: ["doc:" + document.name]))
            }
        }
        return out
    }
}
