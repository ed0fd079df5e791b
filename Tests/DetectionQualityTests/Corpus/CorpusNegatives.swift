// Hard negatives: high-entropy or credential-shaped strings that are not secrets.

enum CorpusNegatives {
    /// (look-alike name, description for prose, generator of (key, value))
    typealias Gen = @Sendable (inout CorpusRNG) -> (String, String)

    static let all: [(String, String, Gen)] = [
        ("git-sha", "commit", { r in (r.pick(["GIT_SHA", "GITHUB_SHA", "CI_COMMIT_SHA", "COMMIT"]), r.hex(40)) }),
        ("git-short-sha", "short commit id", { r in ("CI_COMMIT_SHORT_SHA", r.hex(8)) }),
        ("sha256-hex", "checksum", { r in (r.pick(["SHA256", "ARTIFACT_SHA256", "checksum"]), r.hex(64)) }),
        ("sha512-hex", "sha512 checksum", { r in ("SHA512SUM", r.hex(128)) }),
        ("md5-hex", "ETag", { r in ("ETAG", r.hex(32)) }),
        ("lockfile-integrity", "lockfile integrity hash", { r in ("integrity", "sha512-" + CorpusEnc.base64(r.bytes(64))) }),
        ("go-sum-hash", "go.sum hash", { r in ("GOSUM_LINE", "github.com/\(r.pick(["spf13/cobra", "stretchr/testify", "google/uuid"])) v1.\(r.int(1...9)).\(r.int(0...9)) h1:" + CorpusEnc.base64(r.bytes(32))) }),
        ("uuid", "request id", { r in (r.pick(["REQUEST_ID", "TRACE_ID", "TENANT_ID", "correlation_id"]), r.uuid()) }),
        ("build-id", "build id", { r in (r.pick(["BUILD_ID", "CODEBUILD_BUILD_ID", "BUILDKITE_BUILD_ID"]), r.pick(["acme-api:", "build-"]) + r.uuid()) }),
        ("run-id", "workflow run id", { r in (r.pick(["GITHUB_RUN_ID", "CI_PIPELINE_ID", "CI_JOB_ID"]), r.digits(r.int(9...11))) }),
        ("semver", "version", { r in (r.pick(["VERSION", "APP_VERSION", "CHART_VERSION"]), "\(r.int(0...12)).\(r.int(0...40)).\(r.int(0...99))" + (r.bool() ? "" : "-rc.\(r.int(1...9))+\(r.hex(7))")) }),
        ("aws-doc-example-key", "example AWS access key from the AWS docs", { r in r.bool() ? ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE") : ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY") }),
        ("stripe-doc-example-key", "Stripe docs sample key", { r in ("STRIPE_SECRET_KEY", "sk_test_4eC39HqLyjWDarjtT1zdp7dc") }),
        ("placeholder", "placeholder", { r in (r.pick(["API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "SECRET_KEY"]), r.pick(["<YOUR_API_KEY>", "sk-...", "xxxxxxxxxxxxxxxxxxxxxxxx", "changeme", "your-api-key-here", "********", "REDACTED", "<redacted>", "TODO", "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "sk-proj-XXXXXXXXXXXXXXXXXXXXXXXX", "replace-me", "dummy", "test", "null"])) }),
        ("ci-secret-expression", "secret reference", { r in (r.pick(["GITHUB_TOKEN", "NPM_TOKEN", "AWS_SECRET_ACCESS_KEY", "SLACK_WEBHOOK_URL"]), r.pick(["${{ secrets.GITHUB_TOKEN }}", "${{ secrets.NPM_TOKEN }}", "${{ secrets.AWS_SECRET_ACCESS_KEY }}", "${{ github.token }}"])) }),
        ("env-reference", "variable reference", { r in (r.pick(["TOKEN", "DATABASE_URL", "PASSWORD"]), r.pick(["$TOKEN", "${DATABASE_PASSWORD}", "$(cat /run/secrets/token)", "%API_KEY%", "postgres://app:${POSTGRES_PASSWORD}@db:5432/app", "{{ .Values.apiKey }}", "vault:secret/data/app#token"])) }),
        ("minified-js", "bundle snippet", { r in ("BUNDLE", "!function(e,t){\"object\"==typeof exports?module.exports=t():e.\(r.str(CorpusAlpha.letters, 2))=t()}(this,function(){var n=\"\(r.alnum(24))\",o=function(e){return e.replace(/[A-Z]/g,\"\")};return{k:n,f:o}});") }),
        ("png-data-uri", "inline image", { r in ("LOGO", "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAA" + CorpusEnc.base64(r.bytes(r.int(60...200)))) }),
        ("k8s-pod-name", "pod name", { r in ("POD_NAME", "\(r.pick(["api", "worker", "checkout", "ingest"]))-\(r.pick(["deployment", "server"]))-\(r.str(CorpusAlpha.lowerDigits, 10))-\(r.str(CorpusAlpha.lowerDigits, 5))") }),
        ("docker-image-digest", "image digest", { r in ("IMAGE", "ghcr.io/acme/\(r.pick(["api", "web", "worker"]))@sha256:" + r.hex(64)) }),
        ("s3-object-key", "S3 object key", { r in ("ARTIFACT_KEY", "s3://acme-artifacts/builds/\(r.hex(40))/\(r.alnum(22)).tar.zst") }),
        ("ssh-public-key", "SSH public key", { r in ("AUTHORIZED_KEY", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + CorpusEnc.base64(r.bytes(32)).dropLast(1) + " deploy@ci") }),
        ("certificate-pem", "CA certificate", { r in ("CA_CERT", "-----BEGIN CERTIFICATE-----\n" + CorpusEnc.wrap(CorpusEnc.base64([0x30, 0x82, 0x03, 0x10] + r.bytes(r.int(300...500)))) + "\n-----END CERTIFICATE-----\n") }),
        ("sentry-dsn", "Sentry DSN (public by design)", { r in ("SENTRY_DSN", "https://\(r.hex(32))@o\(r.digits(6)).ingest.us.sentry.io/\(r.digits(7))") }),
        ("public-key-pem", "public key", { r in ("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----\n" + CorpusEnc.wrap(CorpusEnc.base64([0x30, 0x82, 0x01, 0x22, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00, 0x03, 0x82, 0x01, 0x0f, 0x00] + r.bytes(270))) + "\n-----END PUBLIC KEY-----\n") }),
        ("npm-resolved-url", "package tarball", { r in ("RESOLVED", "https://registry.npmjs.org/\(r.pick(["lodash", "react-dom", "@babel/core", "esbuild"]))/-/\(r.pick(["lodash", "react-dom", "core", "esbuild"]))-\(r.int(1...18)).\(r.int(0...30)).\(r.int(0...9)).tgz#\(r.hex(40))") }),
        ("traceparent", "trace context", { r in ("traceparent", "00-\(r.hex(32))-\(r.hex(16))-01") }),
        ("webpack-asset-hash", "asset path", { r in ("ASSET", "/static/js/main.\(r.hex(8)).chunk.js?v=\(r.hex(20))") }),
        ("public-client-id", "OAuth client id", { r in ("OAUTH_CLIENT_ID", r.pick(["Iv1.\(r.hex(16))", "\(r.digits(12))-\(r.str(CorpusAlpha.lowerDigits, 32)).apps.googleusercontent.com"])) }),
        ("stripe-publishable-key", "Stripe publishable key", { r in ("STRIPE_PUBLISHABLE_KEY", "pk_live_" + r.alnum(24)) }),
        ("base64-nonsecret", "encoded settings", { r in ("SETTINGS_B64", CorpusEnc.base64("{\"theme\":\"dark\",\"locale\":\"\(r.pick(["en-US", "de-DE", "fr-FR"]))\",\"beta\":\(r.bool())}")) }),
        ("random-identifier", "resource id", { r in (r.pick(["ARM_SUBSCRIPTION_ID", "INSTANCE_ID", "VPC_ID", "CLUSTER_ARN"]), r.pick([r.uuid(), "i-\(r.hex(17))", "vpc-\(r.hex(17))", "arn:aws:ecs:us-east-1:\(r.digits(12)):cluster/\(r.pick(["prod", "staging"]))"])) }),
    ]

    static func item(_ r: inout CorpusRNG) -> CorpusItem {
        let n = r.int(2...4)
        var fields: [CorpusField] = []
        var names: [String] = []
        var desc = ""
        for i in 0..<n {
            let (name, d, gen) = all[r.int(all.count)]
            let (k, v) = gen(&r)
            if i == 0 { desc = d }
            fields.append(CorpusField(key: k, val: CorpusDoc(v)))
            if !names.contains(name) { names.append(name) }
        }
        var it = CorpusItem(format: "negative", desc: desc, fields: fields)
        it.host = r.pick(["api.acme.io", "ci.acme.io", "registry.npmjs.org"])
        let headerFor = ["uuid": "X-Request-Id", "traceparent": "traceparent", "md5-hex": "If-None-Match", "build-id": "X-Build-Id", "git-sha": "X-Commit-Sha", "run-id": "X-Run-Id", "semver": "X-Client-Version", "sha256-hex": "X-Content-Sha256"]
        if r.int(3) != 0, let h = headerFor[names[0]] { it.headerName = h }
        it.negatives = names
        return it
    }
}
