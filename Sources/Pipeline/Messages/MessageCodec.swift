import Foundation

/// Turns envelopes into bus messages and back, sealed with the request id as associated data
/// (invariant 2): `requests`, `inspected` and `replies` in the compact binary form
/// (`BinaryEnvelope`; JSON with `binaryEnvelopes: false`), the other sealed kinds in JSON.
/// Opening reads both forms. Audit events and outcomes are clear JSON.
///
/// A message that fails to open or decode throws `MessageCodecError`; the caller
/// sends it to `deadletter` with that reason.
///
/// Every message built while a stage works on a request (`TraceContext.current` set) carries
/// that stage's `traceparent` header (W3C: the request's trace id, the stage's span id) beside
/// the value, which is unchanged: messages without it still open, and the next stage starts a
/// new trace for them (`TraceContext.continuing(_:)`). `deadletter` keeps the header.
public struct MessageCodec: Sendable {
    public let sealer: PayloadSealer
    public let topics: Topics

    /// Whether `request`, `inspected` and `reply` write the binary form (else JSON).
    public let binaryEnvelopes: Bool

    public init(sealer: PayloadSealer, topics: Topics, binaryEnvelopes: Bool = true) {
        self.sealer = sealer
        self.topics = topics
        self.binaryEnvelopes = binaryEnvelopes
    }

    /// A sealed message of `kind` for `requestID`.
    public func sealed<T: Encodable>(
        _ value: T, kind: String, topic: String, key: String, requestID: String
    ) throws -> OutgoingMessage {
        let json: Data
        do { json = try Self.sealedEncoder.encode(value) } catch { throw MessageCodecError.encoding("\(kind): \(error)") }
        return try seal(Array(json), kind: kind, topic: topic, key: key, requestID: requestID)
    }

    /// A sealed hot-path envelope: binary unless `binaryEnvelopes` is off.
    func sealedEnvelope<T: Encodable & BinaryEnvelope>(
        _ value: T, kind: String, topic: String, key: String, requestID: String
    ) throws -> OutgoingMessage {
        guard binaryEnvelopes else { return try sealed(value, kind: kind, topic: topic, key: key, requestID: requestID) }
        return try seal(BinaryEnvelopes.encode(value), kind: kind, topic: topic, key: key, requestID: requestID)
    }

    private func seal(_ plain: [UInt8], kind: String, topic: String, key: String, requestID: String) throws -> OutgoingMessage {
        let (sealed, keyHeader) = try sealer.seal(plain, associatedData: requestID)
        return OutgoingMessage(
            topic: topic, key: key,
            headers: [keyHeader, BusHeader(MessageHeader.requestID, requestID), BusHeader(MessageHeader.kind, kind)] + Self.traceHeaders,
            value: sealed)
    }

    /// Opens and decodes a sealed message.
    public func open<T: Decodable>(_ type: T.Type, from message: BusMessage) throws -> T {
        guard let requestID = message.header(MessageHeader.requestID).flatMap({ String(validating: $0, as: UTF8.self) }) else {
            throw MessageCodecError.missingHeader(MessageHeader.requestID)
        }
        let plain: [UInt8]
        do { plain = try sealer.open(message, associatedData: requestID) } catch let e as SealingError {
            throw MessageCodecError.sealing(e)
        }
        if BinaryEnvelopes.isBinary(plain), let binary = T.self as? any BinaryEnvelope.Type {
            do {
                guard let value = try Self.decodeBinary(binary, plain) as? T else {
                    throw EnvelopeFormatError("decoded envelope is not a \(T.self)")
                }
                return value
            } catch {
                throw MessageCodecError.decoding("\(T.self): \(error)")
            }
        }
        do {
            return try Self.decoder.decode(T.self, from: Data(plain))
        } catch {
            throw MessageCodecError.decoding("\(T.self): \(error)")
        }
    }

    private static func decodeBinary<B: BinaryEnvelope>(_ type: B.Type, _ bytes: [UInt8]) throws -> B {
        try BinaryEnvelopes.decode(type, from: bytes)
    }

    public func request(_ r: InspectionRequest) throws -> OutgoingMessage {
        try sealedEnvelope(r, kind: "request", topic: topics.requests, key: r.metadata.sessionID, requestID: r.metadata.requestID)
    }

    public func inspected(_ r: InspectedRequest) throws -> OutgoingMessage {
        try sealedEnvelope(r, kind: "inspected", topic: topics.inspected, key: r.metadata.requestID, requestID: r.metadata.requestID)
    }

    public func reply(_ r: Reply, to ingress: String) throws -> OutgoingMessage {
        try sealedEnvelope(r, kind: "reply", topic: topics.replies, key: ingress, requestID: r.requestID)
    }

    /// An audit event, in clear JSON, keyed by session id.
    public func audit(_ event: AuditEvent) throws -> OutgoingMessage {
        try clear(event, kind: "audit", topic: topics.audit, key: event.sessionID)
    }

    /// A request's outcome for the ledger (`outcomes`), in clear JSON like `audit`, keyed by request id.
    public func outcome(_ event: AuditEvent) throws -> OutgoingMessage {
        var message = try clear(event, kind: "outcome", topic: topics.outcomes, key: event.requestID)
        message.headers.append(BusHeader(MessageHeader.outcome, event.kind.rawValue))
        return message
    }

    /// The outcome kind of an `outcomes` record from its header (`nil` when it has none or an
    /// unknown one: decode the event instead).
    public static func outcomeKind(of message: BusMessage) -> AuditEvent.Kind? {
        message.header(MessageHeader.outcome).flatMap { AuditEvent.Kind(rawValue: String(decoding: $0, as: UTF8.self)) }
    }

    private func clear(_ event: AuditEvent, kind: String, topic: String, key: String) throws -> OutgoingMessage {
        // Canonical JSON (sorted keys), written by hand: `AuditEventJSON`.
        OutgoingMessage(
            topic: topic, key: key,
            headers: [BusHeader(MessageHeader.requestID, event.requestID), BusHeader(MessageHeader.kind, kind)] + Self.traceHeaders,
            value: AuditEventJSON.encode(event))
    }

    /// The `traceparent` header of the span the current task works in (`TraceContext.current`), if any.
    static var traceHeaders: [BusHeader] { TraceContext.current.map { [$0.busHeader] } ?? [] }

    public func decodeAudit(_ message: BusMessage) throws -> AuditEvent {
        // What the stages publish is canonical: read it by hand; anything else as Foundation does.
        if let event = AuditEventJSON.decodeCanonical(message.value) { return event }
        do { return try Self.decoder.decode(AuditEvent.self, from: Data(message.value)) } catch {
            throw MessageCodecError.decoding("audit event: \(error)")
        }
    }

    /// The same message, moved to `deadletter` with the reason (the value stays as it was: sealed or clear JSON).
    public func deadletter(_ message: BusMessage, reason: String) -> OutgoingMessage {
        var headers = message.headers.filter { $0.name != MessageHeader.reason && $0.name != MessageHeader.originalTopic }
        headers.append(BusHeader(MessageHeader.reason, String(reason.prefix(1000))))
        headers.append(BusHeader(MessageHeader.originalTopic, message.topic))
        return OutgoingMessage(topic: topics.deadletter, key: message.key, headers: headers, value: message.value)
    }

    /// Sealed envelopes are read only by the stages: key order does not matter there, and
    /// sorting every object's keys is work on the hot path (docs/performance.md).
    static let sealedEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.withoutEscapingSlashes]
        return e
    }()

    /// Clear events (`audit`, `outcomes`) keep sorted keys: people and SIEM rules read them.
    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    static let decoder = JSONDecoder()
}

/// Why a bus message could not be turned back into an envelope.
public enum MessageCodecError: Error, CustomStringConvertible, Sendable {
    case missingHeader(String)
    case sealing(SealingError)
    case decoding(String)
    case encoding(String)

    public var description: String {
        switch self {
        case .missingHeader(let h): "message has no \(h) header"
        case .sealing(let e): "\(e)"
        case .decoding(let s): "cannot decode \(s)"
        case .encoding(let s): "cannot encode \(s)"
        }
    }
}
