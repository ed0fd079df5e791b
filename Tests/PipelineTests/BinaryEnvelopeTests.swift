import Foundation
import Pipeline
import Testing

@Suite("Binary envelopes")
struct BinaryEnvelopeTests {
    static let identity = CallerIdentity(id: "apikey:ci-bot", groups: ["ci", "agents"], method: "apikey", person: "Ci.Person@example.com")
    static func metadata(idempotencyKey: String? = nil) -> RequestMetadata {
        RequestMetadata(
            requestID: "r-1", sessionID: "sessión ü", identity: identity, connection: "billing",
            receivedAtMillis: 1_764_400_000_123, deadlineMillis: -5, replyTo: "ingress-a", idempotencyKey: idempotencyKey)
    }
    static let request = HTTPRequestData(
        method: "POST", path: "/v1/charge", query: "a=1&b=%2F",
        headers: [HTTPField("Content-Type", "application/json"), HTTPField("X-Empty", "")],
        body: Data([0, 1, 2, 0xFF, 0x7B] + Array("{\"k\":\"v\"}".utf8)))

    static let inspectionRequests = [
        InspectionRequest(metadata: metadata(), request: request),
        InspectionRequest(metadata: metadata(idempotencyKey: "idem-1"), request: HTTPRequestData(method: "GET", path: "/", query: "", headers: [], body: Data())),
    ]
    static let inspected = [
        InspectedRequest(metadata: metadata(), verdict: Verdict(decision: .allow), findings: [], request: request),
        InspectedRequest(
            metadata: metadata(idempotencyKey: "k"), verdict: Verdict(decision: .hold, rules: ["aws-access-key", "hold:path"], reasons: ["path /admin/*"]),
            findings: [FindingSummary(rule: "aws-access-key", ruleClass: "credential", severity: "high", location: "body", start: 0, end: Int(Int32.max) + 7, fingerprint: "ab12")],
            request: request),
    ]
    static let replies = [
        Reply(requestID: "r-1", sessionID: "s", response: HTTPResponseData(status: 200, headers: [HTTPField("A", "b")], body: Data("ok".utf8))),
        Reply(requestID: "r-2", sessionID: "", response: .jsonError(status: 503, error: "unavailable")),
        // A block reply with the masked request (format version 2).
        Reply(
            requestID: "r-3", sessionID: "sessión ü", response: .jsonError(status: 403, error: "blocked"),
            blockedRequest: MaskedRequest(connection: "billing", request: request)),
        Reply(
            requestID: "r-4", sessionID: "s", response: .jsonError(status: 403, error: "blocked"),
            blockedRequest: MaskedRequest(connection: "", request: HTTPRequestData(method: "GET", path: "/", query: "", headers: [], body: Data()))),
    ]

    @Test("every envelope type round-trips, binary and through the codec")
    func roundTrips() throws {
        for value in Self.inspectionRequests {
            let bytes = BinaryEnvelopes.encode(value)
            #expect(BinaryEnvelopes.isBinary(bytes))
            #expect(try BinaryEnvelopes.decode(InspectionRequest.self, from: bytes) == value)
        }
        for value in Self.inspected { #expect(try BinaryEnvelopes.decode(InspectedRequest.self, from: BinaryEnvelopes.encode(value)) == value) }
        for value in Self.replies { #expect(try BinaryEnvelopes.decode(Reply.self, from: BinaryEnvelopes.encode(value)) == value) }
    }

    @Test("the codec writes binary by default and JSON when asked, and opens both")
    func codecWritesAndReadsBothForms() throws {
        let sealer = try PayloadSealer(keys: [PayloadSealer.Key(id: "k1", bytes: Array(repeating: 3, count: 32))])
        let binary = MessageCodec(sealer: sealer, topics: Topics())
        let json = MessageCodec(sealer: sealer, topics: Topics(), binaryEnvelopes: false)
        func received(_ m: OutgoingMessage) -> BusMessage {
            BusMessage(topic: m.topic, partition: 0, offset: 0, key: m.key, headers: m.headers, value: m.value, timestampMillis: 1)
        }
        func plain(_ m: OutgoingMessage) throws -> [UInt8] {
            let id = m.headers.first { $0.name == MessageHeader.requestID }.map { String(decoding: $0.value, as: UTF8.self) } ?? ""
            return try sealer.open(received(m), associatedData: id)
        }
        for value in Self.inspected {
            let b = try binary.inspected(value)
            let j = try json.inspected(value)
            #expect(try plain(b).first == BinaryEnvelopes.version)
            #expect(try plain(j).first == UInt8(ascii: "{"))
            for reader in [binary, json] {
                #expect(try reader.open(InspectedRequest.self, from: received(b)) == value)
                #expect(try reader.open(InspectedRequest.self, from: received(j)) == value)
            }
        }
        let request = try binary.request(Self.inspectionRequests[0])
        #expect(try json.open(InspectionRequest.self, from: received(request)) == Self.inspectionRequests[0])
        // A binary envelope of another type is refused, not misread.
        #expect(throws: MessageCodecError.self) { try binary.open(Reply.self, from: received(request)) }
        let reply = try binary.reply(Self.replies[1], to: "ingress-a")
        #expect(try binary.open(Reply.self, from: received(reply)) == Self.replies[1])
        // A reply with a blocked request, both forms, read by both.
        for value in Self.replies {
            for writer in [binary, json] {
                let m = received(try writer.reply(value, to: "ingress-a"))
                for reader in [binary, json] { #expect(try reader.open(Reply.self, from: m) == value) }
            }
        }
    }

    @Test(
        "a reply is written in the lowest version that holds it: without a blocked request byte for byte the version 1 layout, with one version 2",
        arguments: [
            (replies[0], UInt8(1)), (replies[1], UInt8(1)), (replies[2], UInt8(2)), (replies[3], UInt8(2)),
        ])
    func replyVersion(reply: Reply, version: UInt8) throws {
        let bytes = BinaryEnvelopes.encode(reply)
        #expect(bytes.first == version && BinaryEnvelopes.isBinary(bytes))
        #expect(try BinaryEnvelopes.decode(Reply.self, from: bytes) == reply)
        guard reply.blockedRequest != nil else { return }
        // The version 2 layout is the version 1 layout plus the optional blocked request.
        var withoutBlocked = reply
        withoutBlocked.blockedRequest = nil
        let v1 = BinaryEnvelopes.encode(withoutBlocked)
        #expect(Array(bytes.dropFirst().prefix(v1.count - 1)) == Array(v1.dropFirst()))
        #expect(bytes[v1.count] == 1)
    }

    @Test("a reply written before blocked requests existed decodes with none: version 1 bytes, JSON without the member; a version 2 reply may say none")
    func oldRepliesDecode() throws {
        // Version 1, type 3; "r", "s"; status 200 (zigzag 400 = 0x90 0x03); no headers; body "ok".
        let v1: [UInt8] = [1, 3, 1, 0x72, 1, 0x73, 0x90, 0x03, 0, 2, 0x6F, 0x6B]
        let expected = Reply(requestID: "r", sessionID: "s", response: HTTPResponseData(status: 200, headers: [], body: Data("ok".utf8)))
        #expect(try BinaryEnvelopes.decode(Reply.self, from: v1) == expected)
        #expect(BinaryEnvelopes.encode(expected) == v1)
        // The same reply as version 2 with the "absent" marker.
        #expect(try BinaryEnvelopes.decode(Reply.self, from: [2] + v1.dropFirst() + [0]) == expected)
        // Version 2 with a bad marker, or without its marker, is an error.
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(Reply.self, from: [2] + v1.dropFirst() + [2]) }
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(Reply.self, from: [2] + v1.dropFirst()) }
        // JSON as the old code wrote it (no `blockedRequest` member).
        let json = #"{"requestID":"r","sessionID":"s","response":{"status":200,"headers":[],"body":"b2s="}}"#
        #expect(try JSONDecoder().decode(Reply.self, from: Data(json.utf8)) == expected)
        // A version 1 reply with trailing bytes is still an error (they are not a blocked request).
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(Reply.self, from: v1 + [1]) }
    }

    @Test("malformed input is an error, never a trap: every truncation, trailing bytes, bad version, type, UTF-8, lengths")
    func malformedInput() throws {
        let bytes = BinaryEnvelopes.encode(Self.inspected[1])
        for n in 0..<bytes.count {
            #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(InspectedRequest.self, from: Array(bytes.prefix(n))) }
        }
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(InspectedRequest.self, from: bytes + [0]) }
        var version = bytes
        version[0] = BinaryEnvelopes.latestVersion + 1
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(InspectedRequest.self, from: version) }
        version[0] = 0
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(InspectedRequest.self, from: version) }
        // Every truncation of a version 2 reply.
        let reply = BinaryEnvelopes.encode(Self.replies[2])
        for n in 0..<reply.count {
            #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(Reply.self, from: Array(reply.prefix(n))) }
        }
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(InspectionRequest.self, from: bytes) }
        // requestID "r-1" starts at byte 3 (version, type, length 3): make it invalid UTF-8.
        var utf8 = bytes
        utf8[3] = 0xFF
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(InspectedRequest.self, from: utf8) }
        // A length far beyond the input, and a varint that never ends.
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(Reply.self, from: [1, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) }
        #expect(throws: EnvelopeFormatError.self) { try BinaryEnvelopes.decode(Reply.self, from: [1, 3] + Array(repeating: 0x80, count: 20)) }
        // Deterministic pseudo-random bytes behind a valid header: errors or values, never a crash.
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2000 {
            var input: [UInt8] = [UInt8(1 + (seed >> 8) % 2), UInt8(1 + seed % 3)]
            for _ in 0..<Int(seed % 64) {
                seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
                input.append(UInt8(truncatingIfNeeded: seed))
            }
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
            _ = try? BinaryEnvelopes.decode(InspectedRequest.self, from: input)
            _ = try? BinaryEnvelopes.decode(Reply.self, from: input)
            _ = try? BinaryEnvelopes.decode(InspectionRequest.self, from: input)
        }
    }

    @Test("the binary form is smaller than the JSON form")
    func smaller() throws {
        let value = Self.inspected[1]
        let json = try JSONEncoder().encode(value)
        #expect(BinaryEnvelopes.encode(value).count < json.count)
    }
}
