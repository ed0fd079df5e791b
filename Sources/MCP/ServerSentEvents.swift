/// One event of a `text/event-stream` body.
public struct ServerSentEvent: Sendable, Equatable {
    /// The event's fields other than `data`, in order (`event`, `id`, `retry`, others).
    public var fields: [Field]
    /// The `data` lines joined with `\n` (the event's payload); nil when the event had none.
    public var data: String?

    public struct Field: Sendable, Equatable {
        public var name: String
        public var value: String
        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(fields: [Field] = [], data: String?) {
        self.fields = fields
        self.data = data
    }
}

/// Reads and writes `text/event-stream` bodies (the WHATWG HTML "server-sent events" format)
/// for the MCP Streamable HTTP transport, where each event's data is one JSON-RPC message.
///
/// Guarantees:
/// - `parse` splits lines at CRLF, LF or CR, drops a leading byte-order mark, drops comment
///   lines (`:` first), strips one space after a field's colon, joins `data` lines with `\n`,
///   and ends an event at a blank line. Bytes after the last blank line are an event the
///   stream never finished: a browser discards it, and so does `parse` (`unfinished` is set).
/// - `serialize` writes each event's fields, then its data one `data:` line per line, then a
///   blank line, with LF line ends; `parse(serialize(e)).events == e` for events whose field
///   values hold no line break.
public enum ServerSentEvents {
    public struct Parsed: Sendable, Equatable {
        public var events: [ServerSentEvent]
        /// Bytes after the last complete event were dropped (a stream cut short).
        public var unfinished: Bool

        public init(events: [ServerSentEvent], unfinished: Bool) {
            self.events = events
            self.unfinished = unfinished
        }
    }

    public static func parse(_ bytes: [UInt8]) -> Parsed {
        var events: [ServerSentEvent] = []
        var fields: [ServerSentEvent.Field] = []
        var data: [String] = []
        var pending = false  // something since the last blank line
        var i = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
        var lineStart = i
        func line(_ l: ArraySlice<UInt8>) {
            if l.isEmpty {
                if !fields.isEmpty || !data.isEmpty {
                    events.append(ServerSentEvent(fields: fields, data: data.isEmpty ? nil : data.joined(separator: "\n")))
                }
                fields = []
                data = []
                pending = false
                return
            }
            pending = true
            if l.first == UInt8(ascii: ":") { return }
            let name: String, value: String
            if let colon = l.firstIndex(of: UInt8(ascii: ":")) {
                name = String(decoding: l[l.startIndex..<colon], as: UTF8.self)
                var v = l[(colon + 1)...]
                if v.first == UInt8(ascii: " ") { v = v.dropFirst() }
                value = String(decoding: v, as: UTF8.self)
            } else {
                name = String(decoding: l, as: UTF8.self)
                value = ""
            }
            if name == "data" { data.append(value) } else { fields.append(.init(name: name, value: value)) }
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == 0x0A || c == 0x0D {
                line(bytes[lineStart..<i])
                if c == 0x0D, i + 1 < bytes.count, bytes[i + 1] == 0x0A { i += 1 }
                i += 1
                lineStart = i
            } else {
                i += 1
            }
        }
        let unfinished = pending || lineStart < bytes.count
        return Parsed(events: events, unfinished: unfinished)
    }

    public static func serialize(_ events: [ServerSentEvent]) -> [UInt8] {
        var out: [UInt8] = []
        for event in events {
            for field in event.fields {
                out += Array(field.name.utf8)
                out += Array(": ".utf8)
                out += Array(field.value.utf8)
                out.append(0x0A)
            }
            if let data = event.data {
                // A CR alone or CRLF inside data would also end a line: normalised to LF.
                let lines = data.replacingCRs().split(separator: "\n", omittingEmptySubsequences: false)
                for l in lines {
                    out += Array("data: ".utf8)
                    out += Array(l.utf8)
                    out.append(0x0A)
                }
            }
            out.append(0x0A)
        }
        return out
    }
}

extension String {
    fileprivate func replacingCRs() -> String {
        guard utf8.contains(0x0D) else { return self }
        var out: [UInt8] = []
        let b = Array(utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x0D {
                out.append(0x0A)
                if i + 1 < b.count, b[i + 1] == 0x0A { i += 1 }
            } else {
                out.append(b[i])
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }
}
