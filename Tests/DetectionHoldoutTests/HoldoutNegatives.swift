import Foundation

// Hard negatives: values shaped like secrets that are not secrets (hashes, ids, documented examples,
// placeholders, references, public keys and public-by-design client keys), written without
// reference to any detector. Each item names its shape so that false positives can be read.

struct NegativeShape {
    var name: String
    var make: (inout HoldoutRng) -> Item
}

private func neg(_ shape: String, _ key: String, _ value: String) -> Item {
    Item(key: key, value: [Seg(text: value, marks: [Mark(kind: .negative, format: shape, value: value)])], negative: shape)
}

enum HoldoutNegatives {
    static let camelIdentifiers = [
        "AbstractSingletonProxyFactoryBean", "getUserAccountSettingsForOrganizationAdminPanel",
        "handleIncomingWebhookSignatureVerificationFailure", "InternalServiceAuthenticationTokenRefreshScheduler",
        "createPersonalAccessTokenRequestValidator", "SecretManagerCredentialsProviderFactoryImpl",
        "validateApiKeyHeaderAgainstTenantConfiguration", "PasswordResetTokenExpirationPolicyTests",
    ]

    static func shapes() -> [NegativeShape] {
        var s: [NegativeShape] = []
        func add(_ name: String, _ make: @escaping (inout HoldoutRng) -> Item) { s.append(NegativeShape(name: name, make: make)) }

        add("git-sha") { r in neg("git-sha", r.pick(["GITHUB_SHA", "COMMIT_SHA", "GIT_COMMIT", "REVISION", "HEAD_SHA", "CI_COMMIT_SHA", "BASE_REF_SHA"]), r.hex(40)) }
        add("short-sha") { r in neg("short-sha", r.pick(["SHORT_SHA", "BUILD_REF", "CI_COMMIT_SHORT_SHA"]), r.hex(r.int(7...12))) }
        add("sha256-digest") { r in
            let v = r.chance(0.5) ? "sha256:" + r.hex(64) : r.hex(64)
            return neg("sha256-digest", r.pick(["IMAGE_DIGEST", "CHECKSUM_SHA256", "ARTIFACT_SHA256", "CONTENT_HASH", "TARBALL_SHA"]), v)
        }
        add("md5-etag") { r in neg("md5-etag", r.pick(["ETAG", "CONTENT_MD5", "CACHE_KEY"]), r.hex(32)) }
        add("uuid") { r in neg("uuid", r.pick(["REQUEST_ID", "TRACE_ID", "CORRELATION_ID", "TENANT_ID", "SUBSCRIPTION_ID", "IDEMPOTENCY_KEY", "KMS_KEY_ID", "TOKEN_ID", "API_KEY_ID"]), uuid4(&r)) }
        add("build-id") { r in
            let v: String
            switch r.int(3) {
            case 0: v = r.digits(10)
            case 1: v = "2026112\(r.int(0...9)).\(r.int(1...40))"
            default: v = "build-\(r.hex(12))"
            }
            return neg("build-id", r.pick(["BUILD_ID", "GITHUB_RUN_ID", "CI_PIPELINE_ID", "BUILD_NUMBER", "RELEASE_ID"]), v)
        }
        add("semver") { r in neg("semver", r.pick(["VERSION", "APP_VERSION", "CHART_VERSION", "SDK_VERSION"]),
                                 "\(r.int(0...9)).\(r.int(0...60)).\(r.int(0...30))" + (r.chance(0.4) ? "-rc.\(r.int(1...5))+build.\(r.digits(4))" : "")) }
        add("documented-example-key") { r in
            switch r.int(7) {
            case 0: return neg("documented-example-key", "AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            case 1: return neg("documented-example-key", "AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            case 2: return neg("documented-example-key", "ACCESS_TOKEN",
                               "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
            case 3: return neg("documented-example-key", "AZURE_STORAGE_CONNECTION_STRING",
                               "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
            case 4: return neg("documented-example-key", "TWILIO_ACCOUNT_SID", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX")
            case 5: return neg("documented-example-key", "AWS_ACCESS_KEY_ID", "AKIAI44QH8DHBEXAMPLE")
            default: return neg("documented-example-key", "AWS_SECRET_ACCESS_KEY", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")
            }
        }
        add("placeholder") { r in
            let key = r.pick(["API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "STRIPE_SECRET_KEY", "SLACK_BOT_TOKEN", "OPENAI_API_KEY", "CLIENT_SECRET", "AUTH_TOKEN"])
            let v = r.pick(["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "<your-token>", "YOUR_API_KEY_HERE", "changeme", "REPLACE_ME", "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
                            "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "********", "<redacted>", "[REDACTED]", "your-secret-here", "TODO",
                            "<API_KEY>", "sk-...", "xoxb-your-bot-token", "insert-token-here", "0000000000000000000000000000000000000000",
                            "sk-proj-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "[MASKED]", "null", "<password>", "example-password"])
            return neg("placeholder", key, v)
        }
        add("secret-reference") { r in
            let key = r.pick(["API_KEY", "DEPLOY_TOKEN", "DB_PASSWORD", "NPM_TOKEN", "AWS_SECRET_ACCESS_KEY", "VAULT_TOKEN", "SONAR_TOKEN"])
            let v = r.pick(["${{ secrets.DEPLOY_TOKEN }}", "$API_KEY", "${DB_PASSWORD}", "{{ .Values.apiKey }}", "vault:secret/data/app#token",
                            "arn:aws:secretsmanager:us-east-1:\(r.digits(12)):secret:prod/db-\(r.alnum(6))", "projects/\(r.digits(12))/secrets/db-pass/versions/latest",
                            "op://Engineering/Stripe/credential", "$(cat /run/secrets/token)", "%env(API_KEY)%", "${env:API_KEY}", "$CI_JOB_TOKEN",
                            "${{ secrets.NPM_TOKEN }}", "{{ vault \"secret/ci\" \"token\" }}", "ref+awsssm://prod/api/key"])
            return neg("secret-reference", key, v)
        }
        add("stripe-object-id") { r in
            switch r.int(5) {
            case 0: return neg("stripe-object-id", "PAYMENT_INTENT_ID", "pi_3" + r.alnum(23))
            case 1: return neg("stripe-object-id", "CUSTOMER_ID", "cus_" + r.alnum(14))
            case 2: return neg("stripe-object-id", "CHARGE_ID", "ch_3" + r.alnum(23))
            case 3: return neg("stripe-object-id", "EVENT_ID", "evt_1" + r.alnum(23))
            default: return neg("stripe-object-id", "PRICE_ID", "price_1" + r.alnum(23))
            }
        }
        add("public-client-key") { r in
            switch r.int(5) {
            case 0: return neg("public-client-key", "STRIPE_PUBLISHABLE_KEY", "pk_live_51" + r.alnum(97))
            case 1: return neg("public-client-key", "MAPBOX_ACCESS_TOKEN", "pk." + Enc.b64url("{\"u\":\"acme\",\"a\":\"cl\(r.chars(23, Alpha.lowerDigits))\"}") + "." + r.chars(22, Alpha.base64url))
            case 2: return neg("public-client-key", "SENTRY_DSN", "https://\(r.hex(32))@o\(r.digits(6)).ingest.sentry.io/\(r.digits(7))")
            case 3: return neg("public-client-key", "RECAPTCHA_SITE_KEY", "6L" + r.chars(38, Alpha.base62 + "-_"))
            default: return neg("public-client-key", "GOOGLE_OAUTH_CLIENT_ID", "\(r.digits(12))-\(r.chars(32, Alpha.lowerDigits)).apps.googleusercontent.com")
            }
        }
        // GCP API keys share one shape whether public by design (a Firebase web config) or secret (a
        // server key), so they are negatives only in web-app config: see HoldoutDocuments "firebase-web-config".
        add("request-id") { r in
            switch r.int(7) {
            case 0: return neg("request-id", "STRIPE_REQUEST_ID", "req_" + r.alnum(14))
            case 1: return neg("request-id", "COMPLETION_ID", "chatcmpl-" + r.alnum(29))
            case 2: return neg("request-id", "MESSAGE_ID", "msg_01" + r.alnum(22))
            case 3: return neg("request-id", "TOOL_USE_ID", "toolu_01" + r.alnum(22))
            case 4: return neg("request-id", "TOOL_CALL_ID", "call_" + r.alnum(24))
            case 5: return neg("request-id", "AMZN_TRACE_ID", "Root=1-\(r.hex(8))-\(r.hex(24))")
            default: return neg("request-id", "TRACEPARENT", "00-\(r.hex(32))-\(r.hex(16))-01")
            }
        }
        add("cloud-resource-id") { r in
            switch r.int(6) {
            case 0: return neg("cloud-resource-id", "AMI_ID", "ami-0" + r.hex(16))
            case 1: return neg("cloud-resource-id", "INSTANCE_ID", "i-0" + r.hex(16))
            case 2: return neg("cloud-resource-id", "SECURITY_GROUP_ID", "sg-0" + r.hex(16))
            case 3: return neg("cloud-resource-id", "ROLE_ARN", "arn:aws:iam::\(r.digits(12)):role/\(r.pick(["ci-deployer", "github-actions-oidc"]))")
            case 4: return neg("cloud-resource-id", "AWS_ACCOUNT_ID", r.digits(12))
            default: return neg("cloud-resource-id", "AZURE_SUBSCRIPTION_ID", uuid4(&r))
            }
        }
        add("camelcase-identifier") { r in neg("camelcase-identifier", r.pick(["HANDLER", "CLASS_NAME", "ENTRYPOINT", "TOKEN_VALIDATOR", "SECRET_PROVIDER"]), r.pick(camelIdentifiers)) }
        add("ulid-ksuid-nanoid") { r in
            switch r.int(3) {
            case 0: return neg("ulid-ksuid-nanoid", "EVENT_ID", "01J" + r.chars(23, "0123456789ABCDEFGHJKMNPQRSTVWXYZ"))
            case 1: return neg("ulid-ksuid-nanoid", "ORDER_REF", r.alnum(27))
            default: return neg("ulid-ksuid-nanoid", "SHARE_ID", r.chars(21, Alpha.base62 + "-_"))
            }
        }
        add("mongo-object-id") { r in neg("mongo-object-id", r.pick(["USER_ID", "DOCUMENT_ID", "ACCOUNT_ID"]), r.hex(24)) }
        add("public-key") { r in
            switch r.int(2) {
            case 0: return neg("public-key", "SSH_PUBLIC_KEY", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + r.chars(43, Alpha.base64) + " deploy@ci-runner-\(r.int(1...9))")
            default: return neg("public-key", "SSH_PUBLIC_KEY", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQ" + Enc.b64(r.bytes(360)) + " ops@bastion")
            }
        }
        add("ssh-host-fingerprint") { r in neg("ssh-host-fingerprint", "SSH_HOST_FINGERPRINT", "SHA256:" + r.chars(43, Alpha.base64)) }
        add("webhook-signature") { r in
            r.chance(0.5) ? neg("webhook-signature", "X_HUB_SIGNATURE_256", "sha256=" + r.hex(64))
                : neg("webhook-signature", "STRIPE_SIGNATURE", "t=\(1_790_000_000 + r.int(9_999_999)),v1=\(r.hex(64))")
        }
        add("lockfile-integrity") { r in
            r.chance(0.5) ? neg("lockfile-integrity", "INTEGRITY", "sha512-" + Enc.b64(r.bytes(64)))
                : neg("lockfile-integrity", "GO_SUM_HASH", "h1:" + Enc.b64(r.bytes(32)))
        }
        add("base64-config") { r in
            let json = "{\"feature_flags\":{\"new_checkout\":\(r.chance(0.5)),\"beta_search\":true},\"region\":\"\(r.pick(["eu-west-1", "us-east-2"]))\",\"replicas\":\(r.int(1...9))}"
            return neg("base64-config", r.pick(["APP_CONFIG_B64", "FEATURES"]), Enc.b64(json))
        }
        add("base64-image") { r in neg("base64-image", r.pick(["LOGO", "ICON_DATA_URL"]), "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA" + Enc.b64(r.bytes(r.int(90...400)))) }
        add("url-without-credentials") { r in
            let v = r.pick(["https://api.example.com/v1", "postgres://app@db.internal:5432/orders", "redis://localhost:6379/0",
                            "amqp://rabbitmq.internal:5672/", "https://git.corp.example/platform/api.git", "ssh://git@git.corp.example:2222/web/app.git",
                            "mongodb://mongo-0.mongo,mongo-1.mongo:27017/app?replicaSet=rs0"])
            return neg("url-without-credentials", r.pick(["API_URL", "DATABASE_URL", "REDIS_URL", "BROKER_URL", "REPO_URL"]), v)
        }
        add("url-placeholder-credentials") { r in
            let v = r.pick(["postgres://user:password@localhost:5432/mydb", "mongodb://<username>:<password>@cluster0.example.net/test",
                            "https://user:pass@example.com/path", "mysql://root:root@127.0.0.1:3306/test", "amqp://guest:guest@localhost:5672/",
                            "redis://:${REDIS_PASSWORD}@redis:6379/0", "postgresql://${DB_USER}:${DB_PASS}@${DB_HOST}/app"])
            return neg("url-placeholder-credentials", r.pick(["DATABASE_URL", "MONGO_URI", "EXAMPLE_URL", "BROKER_URL", "REDIS_URL"]), v)
        }
        add("twilio-account-sid") { r in neg("twilio-account-sid", "TWILIO_ACCOUNT_SID", "AC" + r.hex(32)) }
        add("oauth-client-id") { r in
            r.chance(0.5) ? neg("oauth-client-id", "GITHUB_APP_CLIENT_ID", "Iv1." + r.hex(16)) : neg("oauth-client-id", "AZURE_CLIENT_ID", uuid4(&r))
        }
        add("empty-or-masked") { r in neg("empty-or-masked", r.pick(["DB_PASSWORD", "API_TOKEN", "SECRET_KEY"]), r.pick(["", "***", "<masked>", "[FILTERED]", "•••••••••"])) }
        add("prose-value") { r in
            neg("prose-value", r.pick(["DESCRIPTION", "COMMIT_MESSAGE", "NOTE"]), r.pick([
                "Rotate the staging token before Friday's release", "Fix flaky test in PaymentIntentWebhookHandlerTests",
                "Lorem ipsum dolor sit amet, consectetur adipiscing elit", "Bump lodash from 4.17.20 to 4.17.21",
                "use the secret from the vault, not the one in the wiki", "password must be at least 12 characters",
            ]))
        }
        add("key-name-only") { r in
            neg("key-name-only", r.pick(["SECRET_NAME", "KEY_NAME", "TOKEN_HEADER", "PASSWORD_FILE", "KEY_ALGORITHM"]),
                r.pick(["prod-db-credentials", "deploy-key-2026", "X-Api-Key", "/run/secrets/db_password", "RS256", "aws-kms-primary"]))
        }
        add("high-entropy-non-secret") { r in
            switch r.int(3) {
            case 0: return neg("high-entropy-non-secret", "CSP_NONCE_SEED", Enc.b64(r.bytes(12)))
            case 1: return neg("high-entropy-non-secret", "CACHE_BUSTER", r.alnum(16))
            default: return neg("high-entropy-non-secret", "ASSET_FINGERPRINT", "main.\(r.hex(20)).js")
            }
        }
        return s
    }

    /// Ordinary configuration that is neither secret nor secret-shaped.
    static func plain(_ r: inout HoldoutRng) -> Item {
        let choices: [(String, String)] = [
            ("LOG_LEVEL", r.pick(["info", "debug", "warn"])), ("PORT", String(r.pick([8080, 3000, 5432, 9090]))),
            ("AWS_REGION", r.pick(["us-east-1", "eu-central-1"])), ("NODE_ENV", "production"), ("TIMEOUT_MS", String(r.int(1000...60000))),
            ("FEATURE_FLAGS", "checkout_v2,search_beta"), ("SERVICE_NAME", r.pick(["orders-api", "billing-worker", "web"])),
            ("REPLICAS", String(r.int(1...12))), ("ENVIRONMENT", r.pick(["staging", "production", "dev"])), ("CACHE_TTL", "\(r.int(30...3600))s"),
        ]
        let c = r.pick(choices)
        return Item(key: c.0, value: [lit(c.1)])
    }
}
