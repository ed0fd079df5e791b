import Detection
import Foundation

/// Fake secrets in real formats, made fresh for each run (never real credentials), one or
/// more per first-cut detection rule. Each is unique so a leak can be traced to its source.
public struct Canary: Sendable {
    public var rule: String
    public var secret: String
    /// How the secret is embedded in a JSON body (a key/value that puts it in context).
    public var field: String
}

public enum Canaries {
    public static func random(_ n: Int, from alphabet: String) -> String {
        let chars = Array(alphabet)
        return String((0..<n).map { _ in chars[Int.random(in: 0..<chars.count)] })
    }

    public static let upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    public static let lower = "abcdefghijklmnopqrstuvwxyz"
    public static let digits = "0123456789"
    public static var alnum: String { upper + lower + digits }
    public static let hex = "0123456789abcdef"

    /// A GitHub token with a valid CRC32/base62 checksum.
    public static func github(_ prefix: String) -> String {
        let body = random(30, from: alnum)
        let check = String(decoding: Checksums.base62(Checksums.crc32(Array(body.utf8))), as: UTF8.self)
        return prefix + body + check
    }

    public static func jwt() -> String {
        func b64url(_ s: String) -> String {
            Data(s.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        }
        let header = b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}")
        let payload = b64url("{\"sub\":\"\(random(12, from: alnum))\",\"iat\":\(Int.random(in: 1_600_000_000..<1_700_000_000))}")
        return "\(header).\(payload).\(random(43, from: alnum + "-_"))"
    }

    public static func pem() -> String {
        let lines = (0..<8).map { _ in random(64, from: alnum + "+/") }.joined(separator: "\n")
        return "-----BEGIN RSA PRIVATE KEY-----\n\(lines)\n-----END RSA PRIVATE KEY-----"
    }

    /// At least 20 distinct secrets across the first-cut rules.
    public static func make() -> [Canary] {
        [
            Canary(rule: "aws-access-key-id", secret: "AKIA" + random(16, from: upper + "234567"), field: "aws_access_key_id"),
            Canary(rule: "aws-secret-access-key", secret: random(40, from: alnum + "/+"), field: "aws_secret_access_key"),
            Canary(rule: "github-pat-classic", secret: github("ghp_"), field: "github_token"),
            Canary(rule: "github-oauth-token", secret: github("gho_"), field: "gh_oauth"),
            Canary(rule: "github-app-token", secret: github("ghs_"), field: "gh_app"),
            Canary(rule: "github-fine-grained-pat", secret: "github_pat_" + random(22, from: alnum) + "_" + random(59, from: alnum), field: "gh_fine"),
            Canary(rule: "gitlab-pat", secret: "glpat-" + random(20, from: alnum), field: "gitlab"),
            Canary(rule: "slack-bot-token", secret: "xoxb-\(random(11, from: digits))-\(random(12, from: digits))-\(random(24, from: alnum))", field: "slack"),
            Canary(rule: "slack-webhook", secret: "https://hooks.slack.com/services/T\(random(10, from: upper + digits))/B\(random(10, from: upper + digits))/\(random(24, from: alnum))", field: "webhook"),
            Canary(rule: "stripe-secret-key", secret: "sk_live_" + random(32, from: alnum), field: "stripe"),
            Canary(rule: "openai-api-key", secret: "sk-proj-" + random(58, from: alnum + "-_") + "T3BlbkFJ" + random(58, from: alnum + "-_"), field: "openai"),
            Canary(rule: "anthropic-api-key", secret: "sk-ant-api03-" + random(93, from: alnum + "-_") + "AA", field: "anthropic"),
            Canary(rule: "gcp-api-key", secret: "AIza" + random(35, from: alnum + "-_"), field: "google_key"),
            Canary(rule: "jwt", secret: jwt(), field: "id_token"),
            Canary(rule: "private-key", secret: pem(), field: "ssh_key"),
            Canary(rule: "uri-password", secret: "postgres://app:\(random(16, from: alnum))@db.internal:5432/prod", field: "database_url"),
            Canary(rule: "generic-password", secret: random(20, from: alnum + "!#%"), field: "password"),
            Canary(rule: "npm-access-token", secret: "npm_" + random(36, from: alnum), field: "npm"),
            Canary(rule: "digitalocean-pat", secret: "dop_v1_" + random(64, from: hex), field: "do_token"),
            Canary(rule: "dockerhub-pat", secret: "dckr_pat_" + random(27, from: alnum + "-_"), field: "docker"),
            Canary(rule: "gcp-oauth-client-secret", secret: "GOCSPX-" + random(28, from: alnum + "-_"), field: "oauth_secret"),
            Canary(rule: "gitlab-pipeline-trigger-token", secret: "glptt-" + random(40, from: hex), field: "trigger"),
        ]
    }
}
