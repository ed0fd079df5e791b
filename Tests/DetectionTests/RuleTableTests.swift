import Testing
@testable import Detection

/// Table-driven tests: each row is (expected rule id or nil, text). Fake secrets are built
/// from pieces at test time so the repository holds no realistic-looking literal secrets.
@Suite struct RuleTableTests {
    static let engine = try! DetectionEngine(fingerprintKey: Array("table-key".utf8))
    static let P = "_", D = "-"

    static func positives() -> [(String, String)] {
        var f = Fakes(seed: 99)
        let a = Fakes.alnum, h = Fakes.hex, u = Fakes.b64url
        return [
            ("github-pat-classic", "token: " + f.github()),
            ("github-oauth-token", f.github("gh" + "o" + P)),
            ("github-user-to-server-token", f.github("gh" + "u" + P)),
            ("github-app-token", f.github("gh" + "s" + P)),
            ("github-refresh-token", f.github("gh" + "r" + P)),
            ("github-fine-grained-pat", "github" + P + "pat" + P + f.s(a, 22) + P + f.s(a, 59)),
            ("gitlab-pat", "gl" + "pat" + D + f.s(a, 20)),
            ("gitlab-runner-auth-token", "gl" + "rt" + D + f.s(a, 20)),
            ("gitlab-deploy-token", "gl" + "dt" + D + f.s(a, 20)),
            ("gitlab-pipeline-trigger-token", "gl" + "ptt" + D + f.s(h, 40)),
            ("bitbucket-app-password", "AT" + "BB" + f.s(a, 32)),
            ("aws-access-key-id", "AK" + "IA" + f.s(Fakes.upper + Fakes.digits, 16)),
            ("aws-access-key-id", "AS" + "IA" + f.s(Fakes.upper + Fakes.digits, 16)),
            ("aws-secret-access-key", "aws_secret_access_key=" + f.s(Fakes.b64, 40)),
            ("aws-session-token", "AWS_SESSION_TOKEN=" + f.s(Fakes.b64, 300)),
            ("gcp-api-key", "AI" + "za" + f.s(u, 35)),
            ("gcp-oauth-client-secret", "GOC" + "SPX" + D + f.s(u, 28)),
            ("azure-storage-account-key", "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=" + f.s(Fakes.b64, 86) + "==;"),
            ("azure-shared-access-key", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey=" + f.s(Fakes.b64, 43) + "="),
            ("azure-sas-token", "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&sp=r&se=2030-01-01&sig=" + f.s(a, 40) + "%3D"),
            ("azure-ad-client-secret", "AZURE_CLIENT_SECRET=" + f.s(a, 3) + "8Q~" + f.s(a, 34)),
            ("digitalocean-pat", "dop" + P + "v1" + P + f.s(h, 64)),
            ("alibaba-access-key-id", "LT" + "AI" + f.s(a, 20)),
            ("ibm-cloud-api-key", "IBMCLOUD_API_KEY=" + f.s(u, 44)),
            ("heroku-api-key", "HEROKU_API_KEY=" + f.uuid()),
            ("cloudflare-api-token", "CLOUDFLARE_API_TOKEN=" + f.s(u, 40)),
            ("vercel-token", "VERCEL_TOKEN=" + f.s(a, 24)),
            ("netlify-token", "NETLIFY_AUTH_TOKEN=" + f.s(u, 43)),
            ("supabase-pat", "sb" + "p" + P + f.s(h, 40)),
            ("databricks-token", "dap" + "i" + f.s(h, 32)),
            ("snowflake-password", "SNOWFLAKE_PASSWORD=" + f.s(a, 14)),
            ("vault-service-token", "hv" + "s." + f.s(u, 90)),
            ("terraform-cloud-token", f.s(a, 14) + ".atlas" + "v1." + f.s(u, 67)),
            ("npm-access-token", "np" + "m" + P + f.s(a, 36)),
            ("pypi-upload-token", "pypi" + D + "AgEIcHlwaS5vcmc" + f.s(u, 70)),
            ("rubygems-api-key", "rubygems" + P + f.s(h, 48)),
            ("nuget-api-key", "oy" + "2" + f.s(Fakes.lower + Fakes.digits, 43)),
            ("dockerhub-pat", "dckr" + P + "pat" + P + f.s(u, 27)),
            ("jfrog-api-key", "AK" + "Cp" + f.s(a, 69)),
            ("circleci-token", "CIRCLE_TOKEN=" + f.s(h, 40)),
            ("travis-ci-token", "TRAVIS_API_TOKEN=" + f.s(a, 22)),
            ("buildkite-api-token", "bk" + "ua" + P + f.s(h, 40)),
            ("slack-bot-token", "xo" + "xb" + D + f.s(Fakes.digits, 12) + D + f.s(Fakes.digits, 13) + D + f.s(a, 24)),
            ("slack-user-token", "xo" + "xp" + D + f.s(Fakes.digits, 12) + D + f.s(Fakes.digits, 13) + D + f.s(a, 32)),
            ("slack-app-token", "xa" + "pp" + D + "1" + D + f.s(Fakes.upper + Fakes.digits, 11) + D + f.s(Fakes.digits, 13) + D + f.s(h, 64)),
            ("slack-webhook-url", "https://hooks.slack.com/services/T" + f.s(Fakes.upper, 8) + "/B" + f.s(Fakes.upper, 10) + "/" + f.s(a, 24)),
            ("discord-webhook-url", "https://discord.com/api/webhooks/" + f.s(Fakes.digits, 18) + "/" + f.s(u, 68)),
            ("discord-bot-token", "DISCORD_BOT_TOKEN=" + "M" + f.s(a, 23) + "." + f.s(u, 6) + "." + f.s(u, 38)),
            ("telegram-bot-token", "bot" + f.s(Fakes.digits, 10) + ":AA" + f.s(u, 33)),
            ("teams-webhook-url", "https://acme.webhook.office.com/webhookb2/" + f.uuid() + "@" + f.uuid() + "/IncomingWebhook/" + f.s(h, 32) + "/" + f.uuid()),
            ("stripe-secret-key", "sk" + P + "live" + P + f.s(a, 24)),
            ("stripe-restricted-key", "rk" + P + "live" + P + f.s(a, 24)),
            ("stripe-webhook-secret", "wh" + "sec" + P + f.s(a, 32)),
            ("square-access-token", "EA" + "AA" + f.s(u, 60)),
            ("square-oauth-secret", "sq0" + "csp" + D + f.s(u, 43)),
            ("braintree-access-token", "access" + P + "token$production$" + f.s(Fakes.lower + Fakes.digits, 16) + "$" + f.s(h, 32)),
            ("paypal-client-secret", "PAYPAL_CLIENT_SECRET=E" + f.s(u, 79)),
            ("shopify-access-token", "sh" + "pat" + P + f.s(h, 32)),
            ("openai-project-key", "sk" + D + "proj" + D + f.s(u, 120)),
            ("openai-api-key", "sk" + D + f.s(a, 20) + "T3Blbk" + "FJ" + f.s(a, 20)),
            ("anthropic-api-key", "sk" + D + "ant" + D + "api03" + D + f.s(u, 93) + "AA"),
            ("huggingface-token", "hf" + P + f.s(Fakes.upper + Fakes.lower, 34)),
            ("cohere-api-key", "COHERE_API_KEY=" + f.s(a, 40)),
            ("replicate-api-token", "r8" + P + f.s(a, 37)),
            ("groq-api-key", "gs" + "k" + P + f.s(a, 52)),
            ("mistral-api-key", "MISTRAL_API_KEY=" + f.s(a, 32)),
            ("perplexity-api-key", "pp" + "lx" + D + f.s(a, 48)),
            ("twilio-auth-token", "TWILIO_AUTH_TOKEN=" + f.s(h, 32)),
            ("sendgrid-api-key", "S" + "G." + f.s(u, 22) + "." + f.s(u, 43)),
            ("mailgun-api-key", "ke" + "y-" + f.s(h, 32)),
            ("mailchimp-api-key", f.s(h, 32) + "-us" + "12"),
            ("datadog-api-key", "DD_API_KEY=" + f.s(h, 32)),
            ("newrelic-user-api-key", "NR" + "AK" + D + f.s(Fakes.upper + Fakes.digits, 27)),
            ("sentry-user-token", "sntry" + "u" + P + f.s(h, 64)),
            ("pagerduty-api-key", "PAGERDUTY_TOKEN=" + f.s(a, 20)),
            ("atlassian-api-token", "ATATT3x" + "FfGF0" + f.s(u, 180)),
            ("okta-api-token", "OKTA_API_TOKEN=00" + f.s(u, 40)),
            ("okta-ssws-token", "Authorization: SSWS 00" + f.s(a, 40)),
            ("auth0-client-secret", "AUTH0_CLIENT_SECRET=" + f.s(u, 64)),
            ("private-key-rsa", f.pem("RSA PRIVATE KEY")),
            ("private-key-ec", f.pem("EC PRIVATE KEY")),
            ("private-key-dsa", f.pem("DSA PRIVATE KEY")),
            ("private-key-openssh", f.pem("OPENSSH PRIVATE KEY")),
            ("private-key-pkcs8", f.pem("PRIVATE KEY")),
            ("private-key-pkcs8-encrypted", f.pem("ENCRYPTED PRIVATE KEY")),
            ("private-key-pgp", f.pem("PGP PRIVATE KEY BLOCK")),
            ("jwt", "id_token " + f.jwt()),
            ("uri-postgres-password", "postgresql://svc:" + f.s(a, 14) + "@db.prod:5432/app"),
            ("uri-mysql-password", "mysql://root:" + f.s(a, 14) + "@10.1.2.3/app"),
            ("uri-mongodb-password", "mongodb+srv://app:" + f.s(a, 14) + "@c0.x.mongodb.net/"),
            ("uri-redis-password", "redis://:" + f.s(a, 20) + "@cache:6379/0"),
            ("uri-amqp-password", "amqp://guest:" + f.s(a, 12) + "@mq:5672/"),
            ("uri-ldap-password", "ldap://cn=admin:" + f.s(a, 12) + "@ldap.corp"),
            ("uri-ftp-password", "ftp://upload:" + f.s(a, 12) + "@files.corp/in"),
            ("uri-http-basic-auth", "https://deploy:" + f.s(a, 16) + "@git.corp/repo.git"),
            ("authorization-bearer", "Authorization: Bearer " + f.s(a, 40)),
            ("authorization-basic", "Authorization: Basic " + String(decoding: Base64.encode(Array("ci:\(f.s(a, 12))".utf8)), as: UTF8.self)),
            ("authorization-token", "Authorization: token " + f.s(h, 40)),
            ("generic-password", "{\"password\": \"" + f.s(a, 10) + "!9\"}"),
            ("generic-password", "mysql -u root --password=" + f.s(a, 12) + "3"),
            ("generic-password", "db_pass: " + f.s(a, 11) + "7"),
            ("generic-secret", "CLIENT_SECRET=" + f.s(u, 32)),
            ("generic-token", "refresh_token: \"" + f.s(u, 40) + "\""),
            ("generic-api-key", "X-Api-Key: " + f.s(a, 32)),
            ("generic-password", "<password>" + f.s(a, 12) + "5</password>"),
            ("generic-password", "{\"name\": \"DB_PASSWORD\", \"value\": \"" + f.s(a, 14) + "1\"}"),
            ("email", "contact: " + f.s(Fakes.lower, 8) + "@mail-host.io"),
            ("payment-card", "card 4" + "539 1488 0343 6467"),
            ("payment-card", "amex " + f.luhnCard(prefix: "34", length: 15)),
            ("iban", "IBAN " + f.iban(country: "FR", length: 27)),
            ("us-ssn", "ssn: " + f.ssn()),
            ("phone-number", "call +44 20 7946 " + f.s(Fakes.digits, 4)),
            ("phone-number", "tel (415) 555-" + "2671"),
        ]
    }

    @Test func positivesAreDetected() {
        var failures: [String] = []
        for (rule, text) in Self.positives() {
            let found = Self.engine.scan(Array(text.utf8))
            if !found.contains(where: { $0.rule == rule }) { failures.append("\(rule): got \(found.map(\.rule))") }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    @Test func positivesAreDetectedInsideEncodings() {
        var failures: [String] = []
        for (rule, text) in Self.positives() where !rule.hasPrefix("private-key") {
            let b64 = String(decoding: Base64.encode(Array(text.utf8)), as: UTF8.self)
            let pct = CorpusGenerator.percent(text)
            let json = "{\"arguments\": " + CorpusGenerator.jsonString("{\"cmd\": " + CorpusGenerator.jsonString(text) + "}") + "}"
            for (name, doc) in [("base64", "{\"blob\": \"\(b64)\"}"), ("percent", "GET /x?q=\(pct)&a=1"), ("json", json)] {
                let found = Self.engine.scan(Array(doc.utf8), context: ScanContext(hint: .json))
                if !found.contains(where: { $0.rule == rule }) { failures.append("\(rule)/\(name): \(found.map(\.rule))") }
            }
        }
        #expect(failures.isEmpty, "\(failures)")
    }

    static let negatives: [String] = [
        "AK" + "IAIOSFODNN7" + "EXAMPLE", "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY",
        "export OPENAI_API_KEY=YOUR_API_KEY", "token: ${TOKEN}", "api_key = \"<token>\"", "password: xxxxxxxxxxxx",
        "secret: '************'", "GITHUB_TOKEN=" + "gh" + "p_" + String(repeating: "x", count: 36),
        "gh" + "p_" + "abcdefghijklmnopqrstuvwxyz0123456789", // a sequential placeholder (a wrong checksum alone would not clear it)
        "id: 123e4567-e89b-12d3-a456-426614174000", "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "\"integrity\": \"sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==\"",
        "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl user@host",
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJRTESMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0\n-----END CERTIFICATE-----",
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\n<your key here>\n-----END PRIVATE KEY-----",
        "postgres://user:password@localhost/db", "redis://:${REDIS_PASSWORD}@cache:6379", "https://user:****@host/",
        "Authorization: Bearer <token>", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Bearer $API_TOKEN",
        "\"max_tokens\": 4096", "tokenizer: cl100k_base", "password_policy: strong", "\"secret\": true",
        "user@example.com", "icon@2x.png", "npm i react@18.2.0", "nginx@sha256:abc",
        "4111 1111 1111 1111", "1712345678901", "123-45-6789", "tel 555-0142",
        "DE89 3704 0044 0532 0130 00", "version 10.20.30.40", "port 8080, pid 42424",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "[MASKED:github-pat-classic:0123456789ab]", "password: [MASKED:generic-password:0123456789ab]",
        "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV" + "_adQssw5c",
        "sk" + "_live_" + "XXXXXXXXXXXXXXXXXXXXXXXX", "the basic plan; a bearer bond; Authorization failed",
    ]

    @Test(arguments: negatives)
    func negativesAreClean(text: String) {
        let found = Self.engine.scan(Array(text.utf8))
        #expect(found.isEmpty, "unexpected \(found.map(\.rule)) in \(text.prefix(60))")
    }

    @Test func ruleCatalogue() {
        let infos = Self.engine.ruleInfos
        print("rule catalogue: \(infos.count) rules, \(infos.filter { $0.ruleClass == .credential }.count) credential")
        #expect(infos.filter { $0.ruleClass == .credential }.count >= 150)
        #expect(Set(infos.map(\.id)).count == infos.count)
        #expect(infos.filter { $0.ruleClass == .pii }.map(\.id).sorted() == ["email", "iban", "payment-card", "phone-number", "us-ssn"])
    }

    @Test func piiSwitch() {
        let text = Array("mail jane.roe@corp-mail.io card 4539 1488 0343 6467".utf8)
        #expect(Self.engine.scan(text, context: ScanContext(credentials: true, pii: false)).isEmpty)
        #expect(Self.engine.scan(text, context: ScanContext(credentials: false, pii: true)).count == 2)
    }
}
