/// Why an Ingress could not be set up or stopped running. Messages name settings, never secrets.
public struct IngressError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A setting (configuration file or `IngressOptions`) is unusable.
        case configuration
        /// The `replies` reader stopped while the Ingress was still running.
        case repliesReaderStopped
        /// The HTTP server stopped while the Ingress was still running.
        case serverStopped
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "ingress error (\(kind)): \(message)" }
}
