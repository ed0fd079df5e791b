import Foundation
@testable import Detection

/// A generated document with the byte ranges where secrets were embedded.
struct Sample {
    var text: [UInt8]
    var secrets: [Range<Int>]
    var label: String
}

/// Generates realistic payloads (tool calls, CI job specs, env dumps, HTTP logs, stack
/// traces, shell commands) with fake secrets embedded bare, in context, double-JSON-escaped,
/// base64- and URL-encoded; plus clean documents full of look-alikes.
struct CorpusGenerator {
    var f: Fakes

    init(seed: UInt64) { f = Fakes(seed: seed) }

    /// Secret generators: (kind, natural text that carries the secret).
    mutating func secret(_ k: Int) -> (String, String) {
        let P = "_", D = "-"
        switch k % 46 {
        case 0: return ("github", f.github())
        case 1: return ("github-oauth", f.github("gh" + "o" + P))
        case 2: return ("github-fg", "github" + P + "pat" + P + f.s(Fakes.alnum, 22) + P + f.s(Fakes.alnum, 59))
        case 3: return ("gitlab", "gl" + "pat" + D + f.s(Fakes.b64url.filter { $0 != "-" && $0 != "_" }, 20))
        case 4: return ("aws-id", "AK" + "IA" + f.s(Fakes.upper + Fakes.digits, 16))
        case 5: return ("aws-secret", "aws_secret_access_key = " + f.s(Fakes.b64, 40))
        case 6: return ("slack", "xo" + "xb" + D + f.s(Fakes.digits, 12) + D + f.s(Fakes.digits, 13) + D + f.s(Fakes.alnum, 24))
        case 7: return ("slack-webhook", "https://hooks.slack.com/services/T" + f.s(Fakes.upper + Fakes.digits, 8) + "/B" + f.s(Fakes.upper + Fakes.digits, 10) + "/" + f.s(Fakes.alnum, 24))
        case 8: return ("stripe", "sk" + P + "live" + P + f.s(Fakes.alnum, 24))
        case 9: return ("openai", "sk" + D + "proj" + D + f.s(Fakes.b64url, 58) + "T3Blbk" + "FJ" + f.s(Fakes.b64url, 58))
        case 10: return ("anthropic", "sk" + D + "ant" + D + "api03" + D + f.s(Fakes.b64url, 93) + "AA")
        case 11: return ("gcp", "AI" + "za" + f.s(Fakes.b64url, 35))
        case 12: return ("npm", "npm" + P + f.s(Fakes.alnum, 36))
        case 13: return ("sendgrid", "SG" + "." + f.s(Fakes.b64url, 22) + "." + f.s(Fakes.b64url, 43))
        case 14: return ("twilio", "TWILIO_AUTH_TOKEN=" + f.s(Fakes.hex, 32))
        case 15: return ("datadog", "DD_API_KEY: " + f.s(Fakes.hex, 32))
        case 16: return ("jwt", f.jwt())
        case 17: return ("pem-rsa", f.pem("RSA PRIVATE KEY"))
        case 18: return ("pem-pkcs8", f.pem("PRIVATE KEY"))
        case 19: return ("pem-openssh", f.pem("OPENSSH PRIVATE KEY"))
        case 20: return ("postgres", "postgres://app_user:" + f.s(Fakes.alnum, 16) + "@db.internal.corp:5432/orders")
        case 21: return ("redis", "rediss://default:" + f.s(Fakes.alnum, 24) + "@cache-1.prod.net:6380/0")
        case 22: return ("mongodb", "mongodb+srv://svc:" + f.s(Fakes.alnum, 20) + "@cluster0.ab1cd.mongodb.net/app")
        case 23: return ("bearer", "Authorization: Bearer " + f.s(Fakes.alnum, 40))
        case 24: return ("basic", "Authorization: Basic " + String(decoding: Base64.encode(Array("deploy:\(f.s(Fakes.alnum, 14))".utf8)), as: UTF8.self))
        case 25: return ("generic-password", "DB_PASSWORD=" + f.s(Fakes.alnum, 10) + "#" + f.s(Fakes.digits, 2))
        case 26: return ("generic-apikey", "\"api_key\": \"" + f.s(Fakes.alnum, 32) + "\"")
        case 27: return ("generic-secret", "client_secret: " + f.s(Fakes.b64url, 40))
        case 28: return ("hf", "hf" + P + f.s(Fakes.upper + Fakes.lower, 34))
        case 29: return ("groq", "gsk" + P + f.s(Fakes.alnum, 52))
        case 30: return ("shopify", "shp" + "at" + P + f.s(Fakes.hex, 32))
        case 31: return ("digitalocean", "dop" + P + "v1" + P + f.s(Fakes.hex, 64))
        case 32: return ("vault", "hvs" + "." + f.s(Fakes.b64url, 90))
        case 33: return ("pypi", "pypi" + D + "AgEIcHlwaS5vcmc" + f.s(Fakes.b64url, 70))
        case 34: return ("docker", "dckr" + P + "pat" + P + f.s(Fakes.b64url, 27))
        case 35: return ("azure-conn", "DefaultEndpointsProtocol=https;AccountName=acct" + f.s(Fakes.lower, 6) + ";AccountKey=" + f.s(Fakes.b64, 86) + "==;EndpointSuffix=core.windows.net")
        case 36: return ("email", f.s(Fakes.lower, 6) + "." + f.s(Fakes.lower, 7) + "@" + ["gmail.com", "corp-mail.de", "outlook.fr", "uni.edu"][f.int(4)])
        case 37: return ("card", [f.luhnCard(prefix: "4", length: 16), f.luhnCard(prefix: "5\(1 + f.int(5))", length: 16), f.luhnCard(prefix: "37", length: 15)][f.int(3)])
        case 38: return ("iban", f.iban())
        case 39: return ("ssn", f.ssn())
        case 40: return ("phone", f.phone())
        case 41: return ("perplexity", "pplx" + D + f.s(Fakes.alnum, 48))
        case 42: return ("replicate", "r8" + P + f.s(Fakes.alnum, 37))
        case 43: return ("telegram", f.s(Fakes.digits, 10) + ":AA" + f.s(Fakes.b64url, 33))
        case 44: return ("gitlab-runner", "gl" + "rt" + D + f.s(Fakes.alnum, 20))
        default: return ("mysql", "mysql://root:" + f.s(Fakes.alnum, 12) + "!@10.0.0.12:3306/app")
        }
    }

    // MARK: encodings

    static func jsonString(_ s: String) -> String {
        let d = (try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])) ?? Data()
        let arr = String(decoding: d, as: UTF8.self)
        return String(arr.dropFirst().dropLast()) // "…" with quotes
    }

    static func percent(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    /// Clean filler in the style of each payload family.
    mutating func filler() -> String {
        let opts = [
            "\"model\": \"claude-3-5-sonnet\", \"max_tokens\": 1024, \"temperature\": 0.2",
            "\"request_id\": \"\(f.uuid())\", \"trace_id\": \"\(f.s(Fakes.hex, 32))\", \"span_id\": \"\(f.s(Fakes.hex, 16))\"",
            "\"commit\": \"\(f.s(Fakes.hex, 40))\", \"branch\": \"main\", \"author\": \"ci-bot\"",
            "\"image\": \"ghcr.io/acme/api@sha256:\(f.s(Fakes.hex, 64))\"",
            "\"integrity\": \"sha512-\(f.s(Fakes.b64, 86))==\", \"resolved\": \"https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz\"",
            "\"timestamp\": \(1_700_000_000_000 + f.int(1_000_000_000)), \"duration_ms\": \(f.int(5000)), \"status\": 200",
            "\"messages\": [{\"role\": \"user\", \"content\": \"Summarize the build log and list failing tests.\"}]",
            "\"path\": \"/usr/local/lib/python3.11/site-packages/requests/adapters.py\", \"line\": \(f.int(900))",
            "\"checksum\": \"\(f.s(Fakes.hex, 64))\", \"size\": \(f.int(100000))",
            "\"version\": \"2.\(f.int(30)).\(f.int(10))\", \"node\": \"v20.11.1\", \"os\": \"linux\"",
        ]
        return opts[f.int(opts.count)]
    }

    /// Embeds `natural` into a payload family with the given encoding; returns the sample.
    mutating func embed(_ natural: String, encoding: Int, family: Int) -> Sample {
        let payload: String
        switch encoding % 5 {
        case 0: payload = natural                                       // bare / in context
        case 1: payload = "config: " + natural                          // context prefix (YAML-ish)
        case 2:                                                          // double-JSON-escaped (tool call arguments)
            let inner = "{\"command\": \"deploy\", \"env\": " + Self.jsonString(natural) + "}"
            let mid = "{\"name\": \"run_shell\", \"arguments\": " + Self.jsonString(inner) + "}"
            payload = String(Self.jsonString(mid).dropFirst().dropLast())
        case 3: payload = String(decoding: Base64.encode(Array(natural.utf8)), as: UTF8.self)
        default: payload = "q=" + Self.percent(natural) + "&lang=en"
        }
        let pre: String, post: String
        switch family % 6 {
        case 0: // tool call
            pre = "{\"tool\": \"http_request\", \(filler()), \"arguments\": \"{\\\"body\\\": \\\""
            post = "\\\"}\", \(filler())}"
            let escaped = String(Self.jsonString(String(Self.jsonString(payload).dropFirst().dropLast())).dropFirst().dropLast())
            return make(pre, escaped, post, "tool")
        case 1: // CI job spec (YAML)
            pre = "jobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - run: |\n          echo \"start\"\n          export VALUE='"
            post = "'\n          make test\n    env:\n      NODE_ENV: production\n      TOKEN: ${{ secrets.NPM_TOKEN }}\n"
        case 2: // env dump
            pre = "HOME=/root\nPATH=/usr/local/bin:/usr/bin\nHOSTNAME=\(f.s(Fakes.hex, 12))\nGIT_COMMIT=\(f.s(Fakes.hex, 40))\nDATA="
            post = "\nLANG=C.UTF-8\nRUN_ID=\(f.uuid())\n"
        case 3: // HTTP log
            pre = "127.0.0.1 - - [12/Mar/2025:10:1\(f.int(10)):00 +0000] \"POST /v1/run?trace=\(f.s(Fakes.hex, 16)) HTTP/1.1\" 200 \(f.int(9000)) \"-\" \"curl/8.5.0\" body=\""
            post = "\" rt=0.0\(f.int(90))\n"
        case 4: // stack trace
            pre = "Traceback (most recent call last):\n  File \"/app/main.py\", line \(f.int(400)), in handler\n    client.connect(cfg)\nValueError: bad config value '"
            post = "' (request \(f.uuid()))\n"
        default: // shell command
            pre = "$ curl -sS -X POST https://api.internal.dev/v2/jobs -H 'Content-Type: application/json' -d '{\"input\": \""
            post = "\"}' | jq .status\n"
        }
        let body = family % 6 == 0 ? payload : (family % 6 == 3 || family % 6 == 5 ? String(Self.jsonString(payload).dropFirst().dropLast()) : payload)
        return make(pre, body, post, "f\(family % 6)")
    }

    func make(_ pre: String, _ mid: String, _ post: String, _ label: String) -> Sample {
        let a = Array(pre.utf8), m = Array(mid.utf8), b = Array(post.utf8)
        return Sample(text: a + m + b, secrets: [a.count..<(a.count + m.count)], label: label)
    }

    /// Clean documents with look-alikes that must not alarm.
    mutating func negative(_ k: Int) -> Sample {
        let P = "_"
        let items: [String] = [
            "{\"id\": \"\(f.uuid())\", \"parent\": \"\(f.uuid())\"}",
            "commit \(f.s(Fakes.hex, 40))\nAuthor: CI <ci@users.noreply.github.com>\nMerge: \(f.s(Fakes.hex, 7)) \(f.s(Fakes.hex, 7))",
            "sha256sum: \(f.s(Fakes.hex, 64))  dist/app.tar.gz",
            "image: docker.io/library/nginx@sha256:\(f.s(Fakes.hex, 64))",
            "\"integrity\": \"sha512-\(f.s(Fakes.b64, 86))==\"",
            "traceparent: 00-\(f.s(Fakes.hex, 32))-\(f.s(Fakes.hex, 16))-01",
            "{\"image\": \"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA\(f.s(Fakes.b64, 200))\"}",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\(f.s(Fakes.b64, 43)) deploy@build-01",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ\(f.s(Fakes.b64, 300)) user@laptop",
            "-----BEGIN CERTIFICATE-----\n\(f.s(Fakes.b64, 64))\n\(f.s(Fakes.b64, 64))\n-----END CERTIFICATE-----",
            "-----BEGIN PUBLIC KEY-----\n\(f.s(Fakes.b64, 64))\n\(f.s(Fakes.b64, 64))\n-----END PUBLIC KEY-----",
            "export OPENAI_API_KEY=YOUR_API_KEY",
            "api_key: ${API_KEY}", "\"token\": \"<token>\"", "password: xxxxxxxx", "secret = \"********\"",
            "AWS_ACCESS_KEY_ID=AKIA" + "IOSFODNN7" + "EXAMPLE", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
            "token: {{ .Values.apiToken }}", "\"password\": \"\(["changeme", "password", "REDACTED", "<password>", "${DB_PASSWORD}"][f.int(5)])\"",
            "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}", "Authorization: Bearer $TOKEN", "Authorization: Bearer <your-token>",
            "curl -u user:password https://example.com", "postgres://user:password@localhost:5432/db",
            "\"max_tokens\": 4096, \"total_tokens\": 1532, \"tokenizer\": \"cl100k_base\"",
            "{\"next_page_token\": \"\(f.s(Fakes.b64url, 10))\", \"key\": \"Content-Type\", \"value\": \"application/json\"}",
            "const token = await getToken(); const password = readPassword(process.argv[2]);",
            "password_min_length: 12\nsecret_name: prod/db/credentials\ntoken_ttl: 3600",
            "Build 2024-03-12 14:22:01.123 finished in 00:03:12, version 3.14.159, id 1712345678901",
            "call me maybe at version 1.2.3.4 or on port 8080; order #\(f.s(Fakes.digits, 6))",
            "\"amount\": 12345.67, \"currency\": \"EUR\", \"count\": 1000000",
            "icon@2x.png logo@3x.jpg npm install lodash@4.17.21 @types/node",
            "github.com/acme/repo/blob/\(f.s(Fakes.hex, 40))/src/main.swift#L120",
            "ETag: \"\(f.s(Fakes.hex, 32))\"\nX-Request-Id: \(f.uuid())",
            "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV" + P + "adQssw5c",
            "Contact: john.doe@example.com, support@example.org",
            "The basic idea is simple; a bearer of bad news. Authorization is required.",
            "See https://docs.python.org/3/library/base64.html and RFC 4648 section 5",
            "\"sessionId\": \"\(f.s(Fakes.hex, 24))\", \"nonce\": \"\(f.s(Fakes.alnum, 16))\"",
            "pip install requests==2.31.0 --hash=sha256:\(f.s(Fakes.hex, 64))",
            "\"secret\": false, \"password\": null, \"token\": true",
        ]
        let s = items[k % items.count]
        let wrapped = k % 3 == 0 ? "{\"log\": \(Self.jsonString(s))}" : s
        return Sample(text: Array(wrapped.utf8), secrets: [], label: "neg\(k % items.count)")
    }
}
