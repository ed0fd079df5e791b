/// One header of a bus message: a name and raw bytes (Kafka headers are byte arrays).
public struct BusHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]

    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = Array(value.utf8)
    }

    /// The value decoded as UTF-8, or `nil` when it is not valid UTF-8.
    public var stringValue: String? { String(validating: value, as: UTF8.self) }
}

/// A message to publish. The key decides the partition: the same key always
/// lands in the same partition, so order is kept per key.
public struct OutgoingMessage: Sendable, Hashable {
    public var topic: String
    public var key: [UInt8]?
    public var headers: [BusHeader]
    public var value: [UInt8]

    public init(topic: String, key: [UInt8]?, headers: [BusHeader] = [], value: [UInt8]) {
        self.topic = topic
        self.key = key
        self.headers = headers
        self.value = value
    }

    public init(topic: String, key: String, headers: [BusHeader] = [], value: [UInt8]) {
        self.init(topic: topic, key: Array(key.utf8), headers: headers, value: value)
    }
}

/// A message read from the bus, with its position.
public struct BusMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int
    public var offset: Int64
    public var key: [UInt8]?
    public var headers: [BusHeader]
    public var value: [UInt8]
    /// Milliseconds since the Unix epoch at which the message was appended.
    public var timestampMillis: Int64

    public init(
        topic: String, partition: Int, offset: Int64, key: [UInt8]?, headers: [BusHeader],
        value: [UInt8], timestampMillis: Int64
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.headers = headers
        self.value = value
        self.timestampMillis = timestampMillis
    }

    /// The first header with this name, if any.
    public func header(_ name: String) -> [UInt8]? {
        headers.first(where: { $0.name == name })?.value
    }

    /// The key decoded as UTF-8, if present and valid.
    public var keyString: String? { key.flatMap { String(validating: $0, as: UTF8.self) } }
}

/// Where a partition reader starts.
public enum StartPosition: Sendable, Hashable {
    /// The oldest message the bus still holds.
    case beginning
    /// Only messages published after the reader started.
    case end
}

/// A topic to create if it does not exist.
public struct TopicSpec: Sendable, Hashable {
    public var name: String
    public var partitions: Int
    /// Kafka topic configuration (for example `cleanup.policy=compact`); ignored by the embedded bus.
    public var config: [String: String]

    public init(name: String, partitions: Int, config: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.config = config
    }
}
