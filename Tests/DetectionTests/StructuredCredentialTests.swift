import Testing
@testable import Detection

/// Structured credentials and prose, a row per format and carrier: Docker `auths`, Kubernetes
/// `Secret` manifests, Bundler (Sidekiq) credentials, `curl -u`, Atlassian Data Center PATs,
/// Salesforce and Duo tokens, secrets handed over in prose, and the generic rules' refusals
/// (references and documented examples, also percent- and base64-encoded). Fake values are
/// assembled at test time from pieces.
@Suite struct StructuredCredentialTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("structured-key".utf8))
    static let credOnly = ScanContext(credentials: true, pii: false)

    static func b64(_ s: String) -> String { String(decoding: Base64.encode(Array(s.utf8)), as: UTF8.self) }

    /// (expected rule, carrier, text, the secret's text that the finding must cover).
    static func positives() -> [(String, String, String, String)] {
        var f = Fakes(seed: 15)
        let a = Fakes.alnum, h = Fakes.hex
        let dockerPw = f.s(a, 18), dockerAuth = b64("ci-bot:" + dockerPw)
        let idTok = f.s(a, 40)
        let sk = f.s(a, 8).lowercased() + ":" + f.s(h, 8)
        let duo = f.s(a, 40)
        let k8sPw = f.s(a, 20), k8sTok = f.s(a, 32)
        let atl = b64(f.s(Fakes.digits, 12) + ":" + f.s(a, 20))
        let sfAccess = "00D" + f.s(a, 12) + "!" + "AQ" + f.s(a, 40) + "." + f.s(a, 50)
        let sfRefresh = "5Aep86" + "1" + f.s(a, 40) + "." + f.s(a, 40)
        let curlPw = f.s(a, 16)
        let prose1 = f.s(a, 20) + "7" + f.s(a, 19), prose2 = f.s(h, 32)
        let ghr = "gh" + "r_" + f.s(a, 76)
        return [
            ("docker-config-auth", "config.json", "{\"auths\": {\"ghcr.io\": {\"auth\": \"\(dockerAuth)\"}}}", dockerAuth),
            ("docker-config-auth", "config.json tabs", "{\n\t\"auths\": {\n\t\t\"registry.corp\": {\n\t\t\t\"auth\": \"\(dockerAuth)\"\n\t\t}\n\t}\n}", dockerAuth),
            ("docker-config-auth", "DOCKER_AUTH_CONFIG in YAML", "variables:\n  DOCKER_AUTH_CONFIG: \"{\\\"auths\\\": {\\\"r.io\\\": {\\\"auth\\\": \\\"\(dockerAuth)\\\"}}}\"\n", dockerAuth),
            ("docker-config-identity-token", "config.json", "{\"auths\": {\"https://index.docker.io/v1/\": {\"identitytoken\": \"\(idTok)\"}}}", idTok),
            ("sidekiq-license-credentials", ".env", "BUNDLE_GEMS__CONTRIBSYS__COM=\(sk)\n", sk),
            ("sidekiq-license-credentials", "YAML", "variables:\n  BUNDLE_ENTERPRISE__CONTRIBSYS__COM: \"\(sk)\"\n", sk),
            ("sidekiq-license-credentials", "bundle config", "$ bundle config --local enterprise.contribsys.com \(sk)\n", sk),
            ("kubernetes-secret-value", "YAML data", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  db-password: \(b64(k8sPw))\n", b64(k8sPw)),
            ("kubernetes-secret-value", "YAML stringData", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  API_TOKEN: \"\(k8sTok)\"\n", k8sTok),
            ("kubernetes-secret-value", "kubectl JSON (data before kind)", "{\"apiVersion\":\"v1\",\"data\":{\"token\":\"\(b64(k8sTok))\"},\"kind\":\"Secret\",\"metadata\":{\"name\":\"x\"}}", b64(k8sTok)),
            ("kubernetes-secret-value", "manifest in a tool call", "{\"arguments\": {\"manifest\": \"apiVersion: v1\\nkind: Secret\\nmetadata:\\n  name: duo\\ndata:\\n  duo-skey: \(b64(duo))\\n  duo-host: \(b64("api-1.duosecurity.com"))\\n\"}}", b64(duo)),
            ("curl-user-password", "shell history", "  677  curl -u deploy:\(curlPw) https://nexus.corp/service/rest\n", curlPw),
            ("curl-user-password", "--user", "curl --user deploy:\(curlPw) -X POST https://x.corp/api", curlPw),
            ("atlassian-datacenter-pat", "Bearer header", "Authorization: Bearer \(atl)\r\n", atl),
            ("atlassian-datacenter-pat", ".env", "JIRA_PAT=\(atl)\n", atl),
            ("atlassian-datacenter-pat", "query", "GET /cb?jira_pat=\(atl)&state=x", atl),
            ("salesforce-access-token", "Bearer header", "Authorization: Bearer \(sfAccess)\n", sfAccess),
            ("salesforce-refresh-token", "token response", "{\"refresh_token\":\"\(sfRefresh)\",\"instance_url\":\"https://na1.salesforce.com\"}", sfRefresh),
            ("duo-secret-key", ".env", "DUO_IKEY=DI\(f.s(Fakes.upper, 18))\nDUO_SKEY=\(duo)\n", duo),
            ("duo-secret-key", "JSON", "{\"duo_skey\": \"\(duo)\", \"duo_host\": \"api-1.duosecurity.com\"}", duo),
            ("prose-secret", "chat", "I found the Duo Admin API secret key in the old deploy notes, it is \(prose1) and it still works.", prose1),
            ("prose-secret", "fenced", "For reference, I used the following Datadog API key:\n\n```\n\(prose2)\n```\n", prose2),
            ("prose-secret", "indented", "The build failed because the Django SECRET_KEY was wrong. The correct one is\n\n    \(prose1)\n\nplease update it.", prose1),
            ("prose-secret", "JSON content", "{\"role\": \"assistant\", \"content\": \"Here is the token you asked for: \(prose1)\\nLet me know.\"}", prose1),
            ("github-refresh-token", "prose, 80 characters", "Here is the GitHub App refresh token you asked for: \(ghr)", ghr),
            // Kubernetes block scalars: the value on the lines below the key.
            ("kubernetes-secret-value", "stringData block scalar", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  DB_PASS: |-\n    \(k8sTok)\n  other: x\n", k8sTok),
            ("kubernetes-secret-value", "data block scalar folded over lines", "apiVersion: v1\nkind: Secret\ndata:\n  api-token: |\n    \(String(b64(k8sTok + k8sTok).prefix(24)))\n    \(String(b64(k8sTok + k8sTok).dropFirst(24)))\n", String(b64(k8sTok + k8sTok).prefix(24))),
            ("kubernetes-secret-value", "YAML List, the Secret's item", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  data:\n    LOG_LEVEL: info\n- apiVersion: v1\n  data:\n    token: \(b64(k8sTok))\n  kind: Secret\n", b64(k8sTok)),
            ("prose-secret", "value on the next line after a copula", "The build failed because the key was wrong. The correct one is\n\n    \(prose1)\n", prose1),
        ]
    }

    @Test func positivesAreFoundByTheirRule() {
        var failures: [String] = []
        for (rule, carrier, text, secret) in Self.positives() {
            let bytes = Array(text.utf8)
            guard let r = text.range(of: secret) else { failures.append("\(rule)/\(carrier): bad row"); continue }
            let s = text.utf8.distance(from: text.utf8.startIndex, to: r.lowerBound), e = s + secret.utf8.count
            let found = Self.engine.scan(bytes, context: Self.credOnly)
            if !found.contains(where: { $0.rule == rule && $0.start < e && s < $0.end }) {
                failures.append("\(rule)/\(carrier): got \(found.map(\.rule))")
            }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    /// Look-alikes each new rule must leave alone.
    static func negatives() -> [String] {
        var f = Fakes(seed: 16)
        let a = Fakes.alnum
        return [
            // Docker: not base64 user:password, or a placeholder password.
            "{\"auths\": {\"r.io\": {\"auth\": \"\(b64("no-colon-here-at-all"))\"}}}",
            "{\"auths\": {\"r.io\": {\"auth\": \"\(b64("user:<password>"))\"}}}",
            "\"author\": \"\(b64("jane:doe-and-more"))\"",
            // Kubernetes: identifiers under identifier keys, a ConfigMap, references.
            "apiVersion: v1\nkind: Secret\nstringData:\n  REQUEST_ID: \"\(f.uuid())\"\n  DUO_HOST: api-1.duosecurity.com\n  CHART_VERSION: 4.40.3\n  COMMIT: \(f.s(Fakes.hex, 40))\n  TWINE_USERNAME: __token__\n",
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  API_TOKEN: \"\(f.s(a, 32))x\"\n".replacingOccurrences(of: "API_TOKEN", with: "LOG_LEVEL"),
            "apiVersion: v1\nkind: Secret\ndata:\n  settings: \(b64("{\"theme\":\"dark\"}"))\n  token: \(b64("${{ secrets.NPM_TOKEN }}"))\n",
            // Bundler / curl: references and placeholders.
            "BUNDLE_GEMS__CONTRIBSYS__COM=${SIDEKIQ_CREDS}",
            "curl -u \"$USER:$PASSWORD\" https://x.corp/api",
            "docker run -u 1000:1000 alpine",
            // Atlassian DC: base64 runs of 44 that are not `<12 digits>:…`.
            "commit message: " + b64("this is plain text, 33 bytes long"),
            // Prose: public material, references, no value.
            "The public key is MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\(f.s(a, 40))",
            "Use the token from the vault, it is stored at secret/data/app.",
            "the key was rotated yesterday by the on-call engineer",
            "kind: Secret\nmetadata:\n  name: api-token-\(f.s(Fakes.lower, 5))\n",
            // Generic rules: percent- or base64-encoded references and examples.
            "token=%24%7B%7B%20secrets.NPM_TOKEN%20%7D%7D&a=1",
            "password=%7B%7B%20.Values.apiKey%20%7D%7D",
            "api_key: " + b64("sk_test_4eC39HqLyjWDarjtT1zdp7dc"),
            "password: replace-me",
            "DB_PASSWORD=postgres://app:${POSTGRES_PASSWORD}@db:5432/app",
            // Kubernetes List: a ConfigMap item next to a Secret item is not the Secret's data.
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  data:\n    HANDLER: validateApiKeyHeaderAgainstTenant\(f.s(a, 8))\n- apiVersion: v1\n  kind: Secret\n  data:\n    token: \(b64("${{ secrets.TOKEN }}"))\n",
            // Prose: a value on the next line that is not introduced (a log line, a new paragraph).
            "2026-11-29T10:01:22.0Z GITHUB_TOKEN Permissions: contents read, packages write\n2026-11-29T10:01:22.3Z Secret source: Actions",
            "GitLab tokens start with `glpat-`.\nThe request id is returned as `X-Request-Id: \(f.uuid())`.",
            // Public by design or documented: a Firebase web config, jwt.io's example, Azurite's key, Mapbox public tokens.
            "const firebaseConfig = {\n  apiKey: \"AIza\(f.s(Fakes.b64url, 35))\",\n  authDomain: \"shop-1a2b3.firebaseapp.com\",\n  projectId: \"shop-1a2b3\",\n  messagingSenderId: \"123456789012\",\n};",
            "token: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
            "AZURE_STORAGE_CONNECTION_STRING=DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
            "MAPBOX_ACCESS_TOKEN=pk.\(b64("{\"u\":\"acme\",\"a\":\"clx\(f.s(Fakes.lower, 20))\"}").replacingOccurrences(of: "=", with: "")).\(f.s(Fakes.b64url, 22))",
            // References to a secret manager, not secrets.
            "secret_arn: arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-\(f.s(a, 6))",
            "api_key: \"%env(API_KEY)%\"",
            "DB_PASSWORD_SECRET=projects/599215867537/secrets/db-pass/versions/latest",
        ]
    }

    @Test func negativesAreClean() {
        var failures: [String] = []
        for text in Self.negatives() {
            let found = Self.engine.scan(Array(text.utf8), context: Self.credOnly)
            if !found.isEmpty { failures.append("\(found.map(\.rule)) in \(text.prefix(70))") }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test(arguments: [
        ("api-1.duosecurity.com", true), ("us-east-1", true), ("4.40.3", true), ("v1.2.3-rc.1+abc", true),
        ("9fceb02d0ae598e95dc970b74767f19372d61af8", true), ("123e4567-e89b-12d3-a456-426614174000", true),
        ("/static/js/main.7a5b07b1.chunk.js", true), ("sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg", true),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", true), ("{\"a\":1}", true),
        ("Xk9mQ2pL7vR4tY8wZ3nB", false), ("/NBQ8DhxrR9n/HNP61UW0w==", false),
    ])
    func identifierShapes(value: String, identifier: Bool) {
        #expect(NonSecrets.isIdentifierValue(Array(value.utf8)) == identifier, "\(value)")
    }

    @Test(arguments: [("REQUEST_ID", true), ("duo-host", true), ("stripe-publishable-key", true), ("AUTHORIZED_KEY", true),
                      ("clientId", true), ("DB_PASSWORD", false), ("duo-skey", false), ("tls.key", false)])
    func identifierKeys(key: String, identifier: Bool) {
        #expect(NonSecrets.isIdentifierKey(Array(key.utf8)) == identifier, "\(key)")
    }

    @Test func hyperscanAndFallbackAgreeOnTheRows() {
        let fallback = try! DetectionEngine(fingerprintKey: Array("structured-key".utf8), options: EngineOptions(useHyperscan: false))
        for (_, _, text, _) in Self.positives() {
            #expect(Self.engine.scan(Array(text.utf8)) == fallback.scan(Array(text.utf8)))
        }
        for text in Self.negatives() {
            #expect(Self.engine.scan(Array(text.utf8)) == fallback.scan(Array(text.utf8)))
        }
    }
}
