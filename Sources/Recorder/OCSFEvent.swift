import Foundation
import Pipeline

/// An `AuditEvent` as an OCSF 1.1 **API Activity** event (class 6003, category 6 Application
/// Activity), for SIEMs that ingest OCSF (`recorder.sinks[].schema: ocsf`). docs/siem.md lists the
/// mapping field by field, with the ECS names for Elastic users.
///
/// Guarantees:
/// - Only the event's own fields are used (no payload, header value or secret can appear);
///   what OCSF has no attribute for is kept under `unmapped.sluice`, so nothing is lost.
/// - Deterministic: the same event gives the same bytes (sorted keys), one JSON object, no newline.
public enum OCSFEvent {
    public static let classUID = 6003
    public static let categoryUID = 6
    public static let schemaVersion = "1.1.0"

    /// OCSF `activity_id` of API Activity from the HTTP method: 1 Create (POST), 2 Read (GET,
    /// HEAD), 3 Update (PUT, PATCH), 4 Delete (DELETE), 99 Other (anything else, or none).
    public static func activityID(method: String?) -> Int {
        switch method?.uppercased() {
        case "POST": 1
        case "GET", "HEAD": 2
        case "PUT", "PATCH": 3
        case "DELETE": 4
        default: 99
        }
    }

    /// OCSF `severity_id`: 1 Informational; 3 Medium for a call stopped by policy or a person
    /// (blocked, denied, refused) and for a failing sink; 4 High when a high or critical finding
    /// was involved, and for audit events a sink will never get (`sink_events_dropped`); 2 Low
    /// for a failed delivery or an expired hold.
    public static func severityID(_ event: AuditEvent) -> Int {
        if event.findings?.contains(where: { $0.severity == "high" || $0.severity == "critical" }) == true { return 4 }
        switch event.kind {
        case .blocked, .denied, .requestRejected, .approvalRefused, .sinkFailed: return 3
        case .sinkEventsDropped: return 4
        case .failed, .expired: return 2
        default: return 1
        }
    }

    /// OCSF `status_id`: 1 Success, 2 Failure, 0 Unknown (no outcome yet: received, inspected, held).
    /// A started process (`config_loaded`) is a Success.
    public static func statusID(_ event: AuditEvent) -> Int {
        switch event.kind {
        case .delivered, .idempotentReplay, .responseMasked, .sinkRecovered, .configLoaded, .grantCreated, .grantRevoked: return 1
        case .blocked, .denied, .expired, .failed, .requestRejected, .approvalRefused, .sinkFailed, .sinkEventsDropped: return 2
        case .approvalDecided: return event.details?["result"] == "not_counted" ? 2 : 1
        default: return event.status.map { (200..<400).contains($0) ? 1 : 2 } ?? 0
        }
    }

    static func statusName(_ id: Int) -> String {
        switch id {
        case 1: "Success"
        case 2: "Failure"
        default: "Unknown"
        }
    }

    static func severityName(_ id: Int) -> String {
        ["Unknown", "Informational", "Low", "Medium", "High", "Critical", "Fatal"][min(max(id, 0), 6)]
    }

    static func activityName(_ id: Int) -> String {
        switch id {
        case 1: "Create"
        case 2: "Read"
        case 3: "Update"
        case 4: "Delete"
        default: "Other"
        }
    }

    /// The OCSF object of `event`; `chain`: the audit chain's values of its Sluice line, if any.
    static func object(_ event: AuditEvent, productVersion: String, chain: ChainFields? = nil) -> [String: Any] {
        let activity = activityID(method: event.method)
        let severity = severityID(event)
        let status = statusID(event)
        var api: [String: Any] = ["operation": event.kind.rawValue, "request": ["uid": event.requestID]]
        if let connection = event.connection { api["service"] = ["name": connection] }
        var object: [String: Any] = [
            "class_uid": classUID, "class_name": "API Activity",
            "category_uid": categoryUID, "category_name": "Application Activity",
            "activity_id": activity, "activity_name": activityName(activity),
            "type_uid": classUID * 100 + activity,
            "time": event.timeMillis,
            "severity_id": severity, "severity": severityName(severity),
            "status_id": status, "status": statusName(status),
            "api": api,
            "metadata": [
                "version": schemaVersion, "uid": event.eventID, "correlation_uid": event.sessionID,
                "log_name": "audit", "event_code": event.kind.rawValue,
                "product": ["name": "Sluice", "vendor_name": "Sluice", "version": productVersion],
            ] as [String: Any],
            // The caller as a user when known; a refused credential has none.
            "actor": event.identity.map { ["user": ["uid": $0, "name": $0]] } ?? ["user": ["name": "unauthenticated"]],
            // OCSF requires an endpoint and a cloud: the gateway itself, with no cloud provider.
            "src_endpoint": ["name": event.stage, "svc_name": "sluice"],
            "cloud": ["provider": "none"],
        ]
        if let status = event.status { object["status_code"] = "\(status)" }
        if let duration = event.durationMillis { object["duration"] = duration }
        if event.method != nil || event.path != nil {
            var request: [String: Any] = [:]
            if let method = event.method { request["http_method"] = method }
            if let path = event.path { request["url"] = ["path": path] }
            object["http_request"] = request
        }
        if let status = event.status { object["http_response"] = ["code": status] }
        if let findings = event.findings, !findings.isEmpty {
            object["enrichments"] = findings.map { f in
                [
                    "name": "finding", "value": f.rule, "type": f.ruleClass,
                    "data": ["severity": f.severity, "location": f.location, "fingerprint": f.fingerprint, "start": f.start, "end": f.end]
                        as [String: Any],
                ] as [String: Any]
            }
        }
        var sluice: [String: Any] = ["kind": event.kind.rawValue, "stage": event.stage, "session_id": event.sessionID]
        if let decision = event.decision { sluice["decision"] = decision.rawValue }
        if let rules = event.rules { sluice["rules"] = rules }
        if let reasons = event.reasons { sluice["reasons"] = reasons }
        if let details = event.details, !details.isEmpty { sluice["details"] = details }
        if let chain { sluice["chain"] = ["chain_id": chain.chainID, "prev": chain.prev, "seq": chain.seq, "chain": chain.chain] as [String: Any] }
        object["unmapped"] = ["sluice": sluice]
        return object
    }

    /// The OCSF event as one JSON line, with its newline.
    static func line(_ event: AuditEvent, productVersion: String, chain: ChainFields? = nil) -> [UInt8] {
        // Only strings, integers, arrays and dictionaries of them: serialisation cannot fail.
        var bytes = (try? JSONSerialization.data(
            withJSONObject: object(event, productVersion: productVersion, chain: chain), options: [.sortedKeys, .withoutEscapingSlashes]))
            .map { [UInt8]($0) } ?? Array("{}".utf8)
        bytes.append(UInt8(ascii: "\n"))
        return bytes
    }
}
