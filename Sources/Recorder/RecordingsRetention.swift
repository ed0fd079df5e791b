/// One entry directly under `recordings/`, as retention sees it.
public struct RecordingsEntry: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// A day directory (`YYYY-MM-DD`) of the current layout.
        case day(RecordingDay)
        /// A `<name>.jsonl` file of the older one-file-per-session layout.
        case legacyFile
        /// Anything else: never deleted and not counted as a recording.
        case other
    }

    public var name: String
    public var kind: Kind
    /// The entry's modification time (milliseconds since 1970, UTC).
    public var modifiedMillis: Int64
    /// Recording files in the entry (1 for an older-layout file) and their total size.
    public var files: Int
    public var bytes: Int64

    public init(name: String, kind: Kind, modifiedMillis: Int64, files: Int = 0, bytes: Int64 = 0) {
        self.name = name
        self.kind = kind
        self.modifiedMillis = modifiedMillis
        self.files = files
        self.bytes = bytes
    }

    /// What an entry named `name` is: a directory with a day's name is a day, a regular
    /// `*.jsonl` file is an older-layout recording, everything else is `other`.
    public static func kind(name: String, isDirectory: Bool, isRegularFile: Bool) -> Kind {
        if isDirectory, let day = RecordingDay(name: name) { return .day(day) }
        if isRegularFile, name.hasSuffix(".jsonl") { return .legacyFile }
        return .other
    }
}

/// Which recordings are past `recorder.retention`. Pure: the caller lists and deletes.
///
/// Guarantees:
/// - A day is deleted whole, and only once every instant of it is older than the retention
///   (`day end <= now - retention`), so no event younger than the retention is deleted; in
///   particular today (and any later day) is never deleted.
/// - An older-layout file is deleted once its last write is older than the retention
///   (`modified < now - retention`).
/// - An entry that is neither (`other`) is never deleted.
public enum RecordingsRetention {
    public static func isExpired(_ entry: RecordingsEntry, nowMillis: Int64, retentionMillis: Int64) -> Bool {
        let cutoff = nowMillis - max(0, retentionMillis)
        switch entry.kind {
        case .day(let day): return day.endMillis <= cutoff
        case .legacyFile: return entry.modifiedMillis < cutoff
        case .other: return false
        }
    }

    /// The entries to delete, in the given order.
    public static func expired(_ entries: [RecordingsEntry], nowMillis: Int64, retentionMillis: Int64) -> [RecordingsEntry] {
        entries.filter { isExpired($0, nowMillis: nowMillis, retentionMillis: retentionMillis) }
    }
}
