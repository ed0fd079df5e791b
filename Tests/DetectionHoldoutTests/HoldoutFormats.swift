import Foundation

// Credential formats, written from the providers' public descriptions of their token formats
// (prefixes, lengths, alphabets, checksums), not from any detector's patterns. Every value is
// random (fixed seed): none is, or was, a real credential.

enum HeaderStyle {
    case bearer
    case token
    case basic(user: String)
    case named(String)
    /// `Authorization: <scheme> <value>`.
    case scheme(String)
    case none
}

/// A key/value pair as a carrier writes it. `key` is canonical UPPER_SNAKE; carriers restyle it.
struct Item {
    var key: String
    var value: Doc
    /// For hard-negative items: the shape's name.
    var negative: String? = nil
}

/// One credential as it would be leaked: one or more key/value items (a key pair, a connection string…).
struct Cred {
    var name: String
    var product: String
    var noun: String
    var items: [Item]
    var header: HeaderStyle
    /// The item a carrier sends as the credential (in a header, `curl -u`, a docker auth): the first secret one.
    var primary: Doc { (items.first { $0.value.hasSecret } ?? items[0]).value }
}

struct CredFormat {
    var name: String
    var make: (inout HoldoutRng) -> Cred
}

private func single(_ format: String, _ product: String, _ noun: String, _ key: String, _ value: String,
                    _ header: HeaderStyle = .bearer) -> Cred {
    Cred(name: format, product: product, noun: noun, items: [Item(key: key, value: [secretSeg(value, format)])], header: header)
}

private func password(_ r: inout HoldoutRng, _ n: Int) -> String {
    // URL-safe strong password (letters, digits, and the unreserved marks), always mixed class.
    var p = r.chars(n - 3, Alpha.base62 + "-_.~")
    p.insert(contentsOf: r.chars(1, Alpha.upper), at: p.index(p.startIndex, offsetBy: r.int(p.count)))
    p.insert(contentsOf: r.chars(1, Alpha.digits), at: p.index(p.startIndex, offsetBy: r.int(p.count)))
    p.insert(contentsOf: r.chars(1, Alpha.lower), at: p.index(p.startIndex, offsetBy: r.int(p.count)))
    return p
}

private func pemBody(_ r: inout HoldoutRng, lead: String, bytes: Int) -> String {
    let body = lead + Enc.b64(r.bytes(bytes))
    var lines: [String] = []
    var i = body.startIndex
    while i < body.endIndex {
        let j = body.index(i, offsetBy: 64, limitedBy: body.endIndex) ?? body.endIndex
        lines.append(String(body[i..<j]))
        i = j
    }
    return lines.joined(separator: "\n")
}

private func hostname(_ r: inout HoldoutRng) -> String {
    r.pick(["db", "pg", "mysql", "cache", "mq", "primary", "replica"]) + "-" + r.chars(4, Alpha.lowerDigits) + "."
        + r.pick(["internal.corp.example", "prod.svc.cluster.local", "eu-west-1.rds.amazonaws.com", "staging.example.net"])
}

enum HoldoutFormats {
    static func all() -> [CredFormat] {
        var f: [CredFormat] = []
        func add(_ name: String, _ make: @escaping (inout HoldoutRng) -> Cred) { f.append(CredFormat(name: name, make: make)) }

        // GitHub: ghp_/gho_/ghu_/ghs_/ghr_ + 30 base62 + 6-char base62 CRC-32.
        add("github-pat-classic") { r in single("github-pat-classic", "GitHub", "personal access token", "GITHUB_TOKEN",
                                                Checksum.checksummedToken(prefix: "ghp_", rng: &r), .token) }
        add("github-oauth-token") { r in single("github-oauth-token", "GitHub", "OAuth token", "GH_OAUTH_TOKEN",
                                                Checksum.checksummedToken(prefix: "gho_", rng: &r)) }
        add("github-app-token") { r in
            let p = r.pick(["ghu_", "ghs_", "ghr_"])
            return single("github-app-token", "GitHub", "app token", "GITHUB_APP_TOKEN", Checksum.checksummedToken(prefix: p, rng: &r))
        }
        add("github-fine-grained-pat") { r in single("github-fine-grained-pat", "GitHub", "fine-grained token", "GH_TOKEN",
                                                     "github_pat_" + r.alnum(22) + "_" + r.alnum(59)) }
        // GitLab.
        add("gitlab-pat") { r in single("gitlab-pat", "GitLab", "personal access token", "GITLAB_TOKEN",
                                        "glpat-" + r.chars(20, Alpha.base62 + "-_"), .named("PRIVATE-TOKEN")) }
        add("gitlab-pipeline-trigger") { r in single("gitlab-pipeline-trigger", "GitLab", "pipeline trigger token", "TRIGGER_TOKEN",
                                                     "glptt-" + r.hex(40), .none) }
        add("gitlab-runner-token") { r in
            let v = r.chance(0.5) ? "glrt-" + r.chars(20, Alpha.base62 + "-_") : "GR1348941" + r.chars(20, Alpha.base62 + "-_")
            return single("gitlab-runner-token", "GitLab", "runner token", "RUNNER_TOKEN", v, .none)
        }
        add("gitlab-deploy-token") { r in
            Cred(name: "gitlab-deploy-token", product: "GitLab", noun: "deploy token",
                 items: [Item(key: "DEPLOY_TOKEN", value: [secretSeg("gldt-" + r.chars(20, Alpha.base62 + "-_"), "gitlab-deploy-token")]),
                         Item(key: "DEPLOY_USER", value: [lit("gitlab+deploy-token-\(r.int(1000...99999))")])],
                 header: .basic(user: "gitlab+deploy-token-\(r.int(100...999))"))
        }
        // npm: npm_ + 30 base62 + CRC-32 (same scheme as GitHub).
        add("npm-token") { r in single("npm-token", "npm", "access token", "NPM_TOKEN", Checksum.checksummedToken(prefix: "npm_", rng: &r)) }
        // PyPI: "pypi-" + a base64url macaroon whose first bytes always encode the same location.
        add("pypi-token") { r in single("pypi-token", "PyPI", "API token", "TWINE_PASSWORD",
                                        "pypi-AgEIcHlwaS5vcmc" + Enc.b64url(r.bytes(r.int(110...160))), .basic(user: "__token__")) }
        // Slack.
        add("slack-bot-token") { r in single("slack-bot-token", "Slack", "bot token", "SLACK_BOT_TOKEN",
                                             "xoxb-\(r.digits(r.int(10...13)))-\(r.digits(r.int(10...13)))-\(r.alnum(24))") }
        add("slack-user-token") { r in single("slack-user-token", "Slack", "user token", "SLACK_USER_TOKEN",
                                              "xoxp-\(r.digits(11))-\(r.digits(12))-\(r.digits(13))-\(r.hex(32))") }
        add("slack-app-token") { r in single("slack-app-token", "Slack", "app-level token", "SLACK_APP_TOKEN",
                                             "xapp-1-A\(r.chars(10, Alpha.upperDigits))-\(r.digits(13))-\(r.hex(64))") }
        add("slack-legacy-workspace-token") { r in
            let p = r.pick(["xoxa-2", "xoxr"])
            return single("slack-legacy-workspace-token", "Slack", "workspace token", "SLACK_TOKEN",
                          "\(p)-\(r.digits(11))-\(r.digits(12))-\(r.digits(12))-\(r.hex(64))")
        }
        add("slack-webhook-url") { r in single("slack-webhook-url", "Slack", "incoming webhook", "SLACK_WEBHOOK_URL",
                                               "https://hooks.slack.com/services/T\(r.chars(10, Alpha.upperDigits))/B\(r.chars(10, Alpha.upperDigits))/\(r.alnum(24))", .none) }
        // Stripe.
        add("stripe-secret-key") { r in
            let v = r.chance(0.5) ? "sk_live_" + r.alnum(24) : "sk_live_51" + r.alnum(97)
            return single("stripe-secret-key", "Stripe", "secret key", "STRIPE_SECRET_KEY", v, .basic(user: ""))
        }
        add("stripe-restricted-key") { r in single("stripe-restricted-key", "Stripe", "restricted key", "STRIPE_API_KEY",
                                                   "rk_live_51" + r.alnum(97)) }
        add("stripe-webhook-secret") { r in single("stripe-webhook-secret", "Stripe", "webhook signing secret", "STRIPE_WEBHOOK_SECRET",
                                                   "whsec_" + r.alnum(32), .none) }
        // Shopify.
        add("shopify-access-token") { r in single("shopify-access-token", "Shopify", "Admin API access token", "SHOPIFY_ACCESS_TOKEN",
                                                  r.pick(["shpat_", "shpca_", "shppa_"]) + r.hex(32), .named("X-Shopify-Access-Token")) }
        add("shopify-shared-secret") { r in single("shopify-shared-secret", "Shopify", "app shared secret", "SHOPIFY_API_SECRET",
                                                   "shpss_" + r.hex(32), .none) }
        // AWS: access key id (AKIA/ASIA + 16 of [A-Z2-7]) + 40-char secret; STS adds a session token.
        add("aws-access-key") { r in
            Cred(name: "aws-access-key", product: "AWS", noun: "access key", items: [
                Item(key: "AWS_ACCESS_KEY_ID", value: [secretSeg("AKIA" + r.chars(16, Alpha.base32), "aws-access-key-id")]),
                Item(key: "AWS_SECRET_ACCESS_KEY", value: [secretSeg(r.chars(40, Alpha.base64), "aws-secret-access-key")]),
                Item(key: "AWS_DEFAULT_REGION", value: [lit(r.pick(["us-east-1", "eu-west-1", "ap-southeast-2"]))]),
            ], header: .none)
        }
        add("aws-session-credentials") { r in
            Cred(name: "aws-session-credentials", product: "AWS", noun: "temporary credentials", items: [
                Item(key: "AWS_ACCESS_KEY_ID", value: [secretSeg("ASIA" + r.chars(16, Alpha.base32), "aws-access-key-id")]),
                Item(key: "AWS_SECRET_ACCESS_KEY", value: [secretSeg(r.chars(40, Alpha.base64), "aws-secret-access-key")]),
                Item(key: "AWS_SESSION_TOKEN", value: [secretSeg("IQoJb3JpZ2luX2VjE" + Enc.b64(r.bytes(r.int(300...420))), "aws-session-token")]),
            ], header: .none)
        }
        // GCP service-account key file (JSON with a PEM PKCS#8 private key).
        add("gcp-service-account") { r in
            let project = r.pick(["acme", "billing", "ml-pipeline", "data-lake"]) + "-" + r.digits(6)
            let sa = r.pick(["ci-deployer", "terraform", "airflow", "reporting"])
            let pem = "-----BEGIN PRIVATE KEY-----\n" + pemBody(&r, lead: "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ", bytes: 1180) + "\n-----END PRIVATE KEY-----\n"
            let json = """
            {
              "type": "service_account",
              "project_id": "\(project)",
              "private_key_id": "\(r.hex(40))",
              "private_key": "\(Enc.json(pem))",
              "client_email": "\(sa)@\(project).iam.gserviceaccount.com",
              "client_id": "\(r.digits(21))",
              "auth_uri": "https://accounts.google.com/o/oauth2/auth",
              "token_uri": "https://oauth2.googleapis.com/token",
              "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
              "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/\(sa)%40\(project).iam.gserviceaccount.com",
              "universe_domain": "googleapis.com"
            }
            """
            return single("gcp-service-account", "GCP", "service account key", "GOOGLE_CREDENTIALS", json, .none)
        }
        add("private-key-pem") { r in
            let kind = r.int(3)
            let v: String
            switch kind {
            case 0: v = "-----BEGIN RSA PRIVATE KEY-----\n" + pemBody(&r, lead: "MIIEpAIBAAKCAQEA", bytes: 1170) + "\n-----END RSA PRIVATE KEY-----"
            case 1: v = "-----BEGIN EC PRIVATE KEY-----\n" + pemBody(&r, lead: "MHcCAQEEI", bytes: 105) + "\n-----END EC PRIVATE KEY-----"
            default: v = "-----BEGIN OPENSSH PRIVATE KEY-----\n" + pemBody(&r, lead: "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW", bytes: 300) + "\n-----END OPENSSH PRIVATE KEY-----"
            }
            return single("private-key-pem", "SSH/TLS", "private key", "DEPLOY_KEY", v, .none)
        }
        // Azure.
        add("azure-storage-connection-string") { r in
            let acct = "st" + r.chars(r.int(8...14), Alpha.lowerDigits)
            return Cred(name: "azure-storage-connection-string", product: "Azure Storage", noun: "connection string", items: [
                Item(key: "AZURE_STORAGE_CONNECTION_STRING", value: [
                    lit("DefaultEndpointsProtocol=https;AccountName=\(acct);AccountKey="),
                    secretSeg(Enc.b64(r.bytes(64)), "azure-storage-account-key"),
                    lit(";EndpointSuffix=core.windows.net"),
                ]),
            ], header: .none)
        }
        add("azure-storage-account-key") { r in single("azure-storage-account-key", "Azure Storage", "account key", "AZURE_STORAGE_KEY",
                                                       Enc.b64(r.bytes(64)), .none) }
        add("azure-sas-token") { r in
            let acct = "st" + r.chars(10, Alpha.lowerDigits)
            let sig = Enc.percent(Enc.b64(r.bytes(32)))
            let se = "2027-0\(r.int(1...9))-1\(r.int(0...9))T0\(r.int(0...9)):00:00Z"
            return Cred(name: "azure-sas-token", product: "Azure Storage", noun: "SAS URL", items: [
                Item(key: "AZURE_BLOB_SAS_URL", value: [
                    lit("https://\(acct).blob.core.windows.net/\(r.pick(["backups", "artifacts", "exports"]))/\(r.pick(["db.bak", "build.zip", "report.csv"]))?sv=2022-11-02&ss=b&srt=co&sp=\(r.pick(["rl", "rwdlac", "r"]))&se=\(se)&st=2026-11-01T00:00:00Z&spr=https&sig="),
                    secretSeg(sig, "azure-sas-token"),
                ]),
            ], header: .none)
        }
        add("azure-cosmos-connection-string") { r in
            let acct = "cosmos-" + r.chars(8, Alpha.lowerDigits)
            return Cred(name: "azure-cosmos-connection-string", product: "Azure Cosmos DB", noun: "connection string", items: [
                Item(key: "COSMOS_CONNECTION_STRING", value: [
                    lit("AccountEndpoint=https://\(acct).documents.azure.com:443/;AccountKey="),
                    secretSeg(Enc.b64(r.bytes(64)), "azure-cosmos-key"), lit(";"),
                ]),
            ], header: .none)
        }
        add("azure-ad-client-secret") { r in
            Cred(name: "azure-ad-client-secret", product: "Microsoft Entra ID", noun: "client secret", items: [
                Item(key: "AZURE_CLIENT_ID", value: [lit(uuid4(&r))]),
                Item(key: "AZURE_TENANT_ID", value: [lit(uuid4(&r))]),
                Item(key: "AZURE_CLIENT_SECRET", value: [secretSeg(r.alnum(3) + "8Q~" + r.chars(34, Alpha.base62 + "_.~-"), "azure-ad-client-secret")]),
            ], header: .none)
        }
        add("azure-devops-pat") { r in single("azure-devops-pat", "Azure DevOps", "personal access token", "AZURE_DEVOPS_PAT",
                                              r.chars(52, "abcdefghijklmnopqrstuvwxyz234567"), .basic(user: "")) }
        // JWT access token (HS256/RS256, random signature).
        add("jwt") { r in
            let alg = r.pick(["HS256", "RS256", "ES256"])
            let header = Enc.b64url("{\"alg\":\"\(alg)\",\"typ\":\"JWT\"}")
            let iat = 1_790_000_000 + r.int(10_000_000)
            let payload = Enc.b64url("{\"sub\":\"\(uuid4(&r))\",\"iss\":\"https://auth.\(r.pick(["acme", "corp", "shop"])).example\",\"aud\":\"api\",\"iat\":\(iat),\"exp\":\(iat + 3600),\"scope\":\"read write\"}")
            let sig = Enc.b64url(r.bytes(alg == "HS256" ? 32 : 64))
            return single("jwt", "OAuth", "access token", "ACCESS_TOKEN", "\(header).\(payload).\(sig)")
        }
        // Atlassian.
        add("atlassian-api-token") { r in single("atlassian-api-token", "Atlassian", "API token", "JIRA_API_TOKEN",
                                                 "ATATT3xFfGF0" + r.chars(171, Alpha.base64url) + "=" + r.chars(8, Alpha.hexUpper), .basic(user: "ci-bot@acme.example")) }
        add("atlassian-dc-pat") { r in
            // Data Center PATs: base64 of "<12-digit id>:<20 random bytes>" (44 characters).
            let raw = Array(r.digits(12).utf8) + [0x3A] + r.bytes(20)
            return single("atlassian-dc-pat", r.pick(["Jira", "Confluence", "Bitbucket"]), "personal access token",
                          r.pick(["JIRA_PAT", "CONFLUENCE_TOKEN", "BITBUCKET_PAT"]), Enc.b64(raw))
        }
        add("bitbucket-app-password") { r in single("bitbucket-app-password", "Bitbucket", "app password", "BITBUCKET_APP_PASSWORD",
                                                    "ATBB" + r.alnum(24) + r.chars(8, Alpha.hexUpper), .basic(user: "ci-bot")) }
        // HashiCorp Vault.
        add("vault-service-token") { r in
            let v = r.chance(0.7) ? "hvs.CAESI" + r.chars(86, Alpha.base64url) : "hvs." + r.alnum(24)
            return single("vault-service-token", "Vault", "token", "VAULT_TOKEN", v, .named("X-Vault-Token"))
        }
        add("vault-batch-token") { r in single("vault-batch-token", "Vault", "batch token", "VAULT_TOKEN",
                                               "hvb.AAAAAQ" + r.chars(r.int(120...150), Alpha.base64url), .named("X-Vault-Token")) }
        // Databricks PAT: dapi + 32 hex (optionally -N).
        add("databricks-token") { r in single("databricks-token", "Databricks", "personal access token", "DATABRICKS_TOKEN",
                                              "dapi" + r.hex(32) + (r.chance(0.3) ? "-2" : "")) }
        // Twilio: Account SID (identifier) + 32-hex auth token; API key SID + 32-char secret.
        add("twilio-auth-token") { r in
            let sid = "AC" + r.hex(32)
            return Cred(name: "twilio-auth-token", product: "Twilio", noun: "auth token", items: [
                Item(key: "TWILIO_AUTH_TOKEN", value: [secretSeg(r.hex(32), "twilio-auth-token")]),
                Item(key: "TWILIO_ACCOUNT_SID", value: [identSeg(sid, "twilio-account-sid")]),
            ], header: .basic(user: sid))
        }
        add("twilio-api-key") { r in
            let sid = "SK" + r.hex(32)
            return Cred(name: "twilio-api-key", product: "Twilio", noun: "API key secret", items: [
                Item(key: "TWILIO_API_SECRET", value: [secretSeg(r.alnum(32), "twilio-api-key-secret")]),
                Item(key: "TWILIO_API_KEY", value: [identSeg(sid, "twilio-api-key-sid")]),
            ], header: .basic(user: sid))
        }
        add("sendgrid-api-key") { r in single("sendgrid-api-key", "SendGrid", "API key", "SENDGRID_API_KEY",
                                              "SG." + r.chars(22, Alpha.base64url) + "." + r.chars(43, Alpha.base64url)) }
        add("mailgun-api-key") { r in
            let v = r.chance(0.5) ? "key-" + r.hex(32) : r.hex(32) + "-" + r.hex(8) + "-" + r.hex(8)
            return single("mailgun-api-key", "Mailgun", "API key", "MAILGUN_API_KEY", v, .basic(user: "api"))
        }
        add("doppler-token") { r in
            let p = r.pick(["dp.pt.", "dp.st.prd.", "dp.st.dev.", "dp.sa.", "dp.ct."])
            return single("doppler-token", "Doppler", "token", "DOPPLER_TOKEN", p + r.alnum(43))
        }
        add("grafana-service-account-token") { r in single("grafana-service-account-token", "Grafana", "service account token", "GRAFANA_TOKEN",
                                                           "glsa_" + r.alnum(32) + "_" + r.hex(8)) }
        add("grafana-cloud-token") { r in
            let json = "{\"o\":\"\(r.digits(6))\",\"n\":\"stack-\(r.digits(6))-hm-read\",\"k\":\"\(r.alnum(24))\",\"m\":{\"r\":\"\(r.pick(["prod-us-east-0", "prod-eu-west-2"]))\"}}"
            return single("grafana-cloud-token", "Grafana Cloud", "access policy token", "GRAFANA_CLOUD_API_KEY", "glc_" + Enc.b64(json))
        }
        add("openai-api-key") { r in
            let v: String
            switch r.int(3) {
            case 0: v = "sk-proj-" + r.chars(r.int(58...74), Alpha.base62 + "-_") + "T3BlbkFJ" + r.chars(r.int(58...74), Alpha.base62 + "-_")
            case 1: v = "sk-svcacct-" + r.chars(64, Alpha.base62 + "-_") + "T3BlbkFJ" + r.chars(64, Alpha.base62 + "-_")
            default: v = "sk-" + r.alnum(20) + "T3BlbkFJ" + r.alnum(20)
            }
            return single("openai-api-key", "OpenAI", "API key", "OPENAI_API_KEY", v)
        }
        add("anthropic-api-key") { r in
            let v = r.chance(0.8) ? "sk-ant-api03-" + r.chars(93, Alpha.base62 + "-_") + "AA" : "sk-ant-admin01-" + r.chars(93, Alpha.base62 + "-_") + "AA"
            return single("anthropic-api-key", "Anthropic", "API key", "ANTHROPIC_API_KEY", v, .named("x-api-key"))
        }
        add("huggingface-token") { r in single("huggingface-token", "Hugging Face", "access token", "HF_TOKEN", "hf_" + r.chars(34, Alpha.upper + Alpha.lower)) }
        add("sonarqube-token") { r in single("sonarqube-token", "SonarQube", "token", "SONAR_TOKEN", r.pick(["squ_", "sqp_", "sqa_"]) + r.hex(40), .basic(user: "")) }
        add("tableau-pat") { r in
            Cred(name: "tableau-pat", product: "Tableau", noun: "personal access token secret", items: [
                Item(key: "TABLEAU_PAT_SECRET", value: [secretSeg(r.chars(22, Alpha.base64) + "==:" + r.alnum(32), "tableau-pat")]),
                Item(key: "TABLEAU_PAT_NAME", value: [lit(r.pick(["ci-extract-refresh", "reporting-bot", "ops"]))]),
            ], header: .none)
        }
        add("octopus-deploy-api-key") { r in single("octopus-deploy-api-key", "Octopus Deploy", "API key", "OCTOPUS_API_KEY",
                                                    "API-" + r.chars(r.int(26...32), Alpha.upperDigits), .named("X-Octopus-ApiKey")) }
        add("duo-secret-key") { r in
            Cred(name: "duo-secret-key", product: "Duo", noun: "secret key", items: [
                Item(key: "DUO_SECRET_KEY", value: [secretSeg(r.alnum(40), "duo-secret-key")]),
                Item(key: "DUO_INTEGRATION_KEY", value: [identSeg("DI" + r.chars(18, Alpha.upperDigits), "duo-integration-key")]),
                Item(key: "DUO_API_HOSTNAME", value: [lit("api-\(r.hex(8)).duosecurity.com")]),
            ], header: .none)
        }
        add("shippo-token") { r in single("shippo-token", "Shippo", "API token", "SHIPPO_API_KEY", "shippo_live_" + r.hex(40), .token) }
        add("smartsheet-token") { r in single("smartsheet-token", "Smartsheet", "API access token", "SMARTSHEET_ACCESS_TOKEN",
                                              r.chance(0.5) ? r.chars(26, Alpha.lowerDigits) : r.alnum(37)) }
        add("sidekiq-credentials") { r in single("sidekiq-credentials", "Sidekiq", "Enterprise license credentials", "BUNDLE_ENTERPRISE__CONTRIBSYS__COM",
                                                 r.hex(8) + ":" + r.hex(8), .none) }
        add("sumologic-access-key") { r in
            Cred(name: "sumologic-access-key", product: "Sumo Logic", noun: "access key", items: [
                Item(key: "SUMO_ACCESS_ID", value: [secretSeg("su" + r.alnum(12), "sumologic-access-id")]),
                Item(key: "SUMO_ACCESS_KEY", value: [secretSeg(r.alnum(64), "sumologic-access-key")]),
            ], header: .none)
        }
        add("salesforce-access-token") { r in single("salesforce-access-token", "Salesforce", "OAuth access token", "SF_ACCESS_TOKEN",
                                                     "00D" + r.chars(12, Alpha.base62) + "!AQ" + r.chars(r.int(90...100), Alpha.base62 + "._")) }
        add("datadog-api-key") { r in
            Cred(name: "datadog-api-key", product: "Datadog", noun: "API key", items: [
                Item(key: "DD_API_KEY", value: [secretSeg(r.hex(32), "datadog-api-key")]),
                Item(key: "DD_APP_KEY", value: [secretSeg(r.hex(40), "datadog-app-key")]),
                Item(key: "DD_SITE", value: [lit(r.pick(["datadoghq.com", "datadoghq.eu"]))]),
            ], header: .named("DD-API-KEY"))
        }
        add("cloudflare-api-token") { r in single("cloudflare-api-token", "Cloudflare", "API token", "CLOUDFLARE_API_TOKEN", r.chars(40, Alpha.base62 + "-_")) }
        add("digitalocean-token") { r in single("digitalocean-token", "DigitalOcean", "personal access token", "DIGITALOCEAN_TOKEN",
                                                r.pick(["dop_v1_", "doo_v1_", "dor_v1_"]) + r.hex(64)) }
        add("postman-api-key") { r in single("postman-api-key", "Postman", "API key", "POSTMAN_API_KEY", "PMAK-" + r.hex(24) + "-" + r.hex(34), .named("X-Api-Key")) }
        add("pulumi-token") { r in single("pulumi-token", "Pulumi", "access token", "PULUMI_ACCESS_TOKEN", "pul-" + r.hex(40), .token) }
        add("terraform-cloud-token") { r in single("terraform-cloud-token", "Terraform Cloud", "API token", "TFE_TOKEN",
                                                   r.alnum(14) + ".atlasv1." + r.chars(67, Alpha.base62 + "-_")) }
        add("newrelic-user-key") { r in single("newrelic-user-key", "New Relic", "user API key", "NEW_RELIC_API_KEY", "NRAK-" + r.chars(27, Alpha.upperDigits), .named("Api-Key")) }
        add("linear-api-key") { r in single("linear-api-key", "Linear", "API key", "LINEAR_API_KEY", "lin_api_" + r.alnum(40), .named("Authorization")) }
        add("age-secret-key") { r in single("age-secret-key", "age", "identity", "SOPS_AGE_KEY", "AGE-SECRET-KEY-1" + r.chars(58, Alpha.bech32), .none) }
        add("mapbox-secret-token") { r in
            let body = Enc.b64url("{\"u\":\"\(r.pick(["acme", "mapsteam", "geo-ops"]))\",\"a\":\"cl\(r.chars(23, Alpha.lowerDigits))\"}")
            return single("mapbox-secret-token", "Mapbox", "secret token", "MAPBOX_SECRET_TOKEN", "sk." + body + "." + r.chars(22, Alpha.base64url), .none)
        }
        add("okta-api-token") { r in single("okta-api-token", "Okta", "API token", "OKTA_API_TOKEN", "00" + r.chars(40, Alpha.base62 + "-_"), .scheme("SSWS")) }
        add("mailchimp-api-key") { r in single("mailchimp-api-key", "Mailchimp", "API key", "MAILCHIMP_API_KEY", r.hex(32) + "-us" + String(r.int(1...21)), .basic(user: "anystring")) }
        add("telegram-bot-token") { r in single("telegram-bot-token", "Telegram", "bot token", "TELEGRAM_BOT_TOKEN",
                                                r.digits(10) + ":AA" + r.chars(33, Alpha.base62 + "-_"), .none) }
        add("discord-webhook-url") { r in single("discord-webhook-url", "Discord", "webhook", "DISCORD_WEBHOOK",
                                                 "https://discord.com/api/webhooks/\(r.digits(19))/\(r.chars(68, Alpha.base64url))", .none) }
        add("square-access-token") { r in single("square-access-token", "Square", "access token", "SQUARE_ACCESS_TOKEN", "EAAA" + r.chars(60, Alpha.base62 + "-_")) }
        add("alibaba-access-key") { r in
            Cred(name: "alibaba-access-key", product: "Alibaba Cloud", noun: "AccessKey", items: [
                Item(key: "ALIBABA_CLOUD_ACCESS_KEY_ID", value: [secretSeg("LTAI" + r.alnum(20), "alibaba-access-key-id")]),
                Item(key: "ALIBABA_CLOUD_ACCESS_KEY_SECRET", value: [secretSeg(r.alnum(30), "alibaba-access-key-secret")]),
            ], header: .none)
        }
        add("sentry-auth-token") { r in
            let v: String
            if r.chance(0.5) {
                let org = r.pick(["acme", "shopco", "data-team"])
                let json = "{\"iat\":\(1_790_000_000 + r.int(9_999_999)).0,\"url\":\"https://sentry.io\",\"region_url\":\"https://us.sentry.io\",\"org\":\"\(org)\"}"
                v = "sntrys_" + Enc.b64(json).replacingOccurrences(of: "=", with: "") + "_" + r.chars(43, Alpha.base64)
            } else {
                v = "sntryu_" + r.hex(64)
            }
            return single("sentry-auth-token", "Sentry", "auth token", "SENTRY_AUTH_TOKEN", v)
        }
        add("dynatrace-token") { r in single("dynatrace-token", "Dynatrace", "API token", "DT_API_TOKEN",
                                             "dt0c01." + r.chars(24, Alpha.upperDigits) + "." + r.chars(64, Alpha.upperDigits), .scheme("Api-Token")) }
        add("planetscale-token") { r in single("planetscale-token", "PlanetScale", "service token", "PLANETSCALE_SERVICE_TOKEN",
                                               r.pick(["pscale_tkn_", "pscale_pw_"]) + r.chars(43, Alpha.base62 + "-_")) }
        add("supabase-token") { r in single("supabase-token", "Supabase", "access token", "SUPABASE_ACCESS_TOKEN", "sbp_" + r.hex(40)) }
        add("flyio-token") { r in single("flyio-token", "Fly.io", "access token", "FLY_API_TOKEN", "fo1_" + r.chars(43, Alpha.base64url)) }
        add("jenkins-api-token") { r in single("jenkins-api-token", "Jenkins", "API token", "JENKINS_API_TOKEN", "11" + r.hex(32), .basic(user: "deploy-bot")) }
        add("artifactory-api-key") { r in single("artifactory-api-key", "Artifactory", "API key", "ARTIFACTORY_API_KEY", "AKCp" + r.chars(69, Alpha.base62), .named("X-JFrog-Art-Api")) }
        // Connection URLs and passwords.
        add("postgres-url") { r in
            let pw = password(&r, r.int(16...28))
            return Cred(name: "postgres-url", product: "PostgreSQL", noun: "database URL", items: [
                Item(key: "DATABASE_URL", value: [lit("\(r.pick(["postgres", "postgresql"]))://\(r.pick(["app", "svc_orders", "admin"])):"), secretSeg(pw, "db-url-password"),
                                                  lit("@\(hostname(&r)):5432/\(r.pick(["orders", "app", "analytics"]))?sslmode=require")]),
            ], header: .none)
        }
        add("mongodb-url") { r in
            let pw = password(&r, r.int(16...28))
            return Cred(name: "mongodb-url", product: "MongoDB", noun: "connection string", items: [
                Item(key: "MONGODB_URI", value: [lit("mongodb+srv://\(r.pick(["app", "reporting"])):"), secretSeg(pw, "db-url-password"),
                                                 lit("@cluster0.\(r.chars(5, Alpha.lowerDigits)).mongodb.net/\(r.pick(["prod", "events"]))?retryWrites=true&w=majority")]),
            ], header: .none)
        }
        add("redis-url") { r in
            let pw = password(&r, r.int(20...32))
            return Cred(name: "redis-url", product: "Redis", noun: "URL", items: [
                Item(key: "REDIS_URL", value: [lit("\(r.pick(["redis", "rediss"]))://\(r.pick(["default", ""])):"), secretSeg(pw, "db-url-password"), lit("@\(hostname(&r)):6379/0")]),
            ], header: .none)
        }
        add("amqp-url") { r in
            let pw = password(&r, r.int(16...24))
            return Cred(name: "amqp-url", product: "RabbitMQ", noun: "broker URL", items: [
                Item(key: "AMQP_URL", value: [lit("amqps://\(r.pick(["worker", "celery"])):"), secretSeg(pw, "db-url-password"), lit("@\(hostname(&r)):5671/\(r.pick(["%2F", "jobs"]))")]),
            ], header: .none)
        }
        add("jdbc-url") { r in
            let pw = password(&r, r.int(14...24))
            let host = hostname(&r)
            let v: Doc = r.chance(0.5)
                ? [lit("jdbc:postgresql://\(host):5432/ledger?user=ledger_app&password="), secretSeg(pw, "jdbc-password"), lit("&ssl=true")]
                : [lit("jdbc:sqlserver://\(host):1433;databaseName=erp;user=erp_svc;password="), secretSeg(pw, "jdbc-password"), lit(";encrypt=true;")]
            return Cred(name: "jdbc-url", product: "JDBC", noun: "connection URL", items: [Item(key: "SPRING_DATASOURCE_URL", value: v)], header: .none)
        }
        add("odbc-connection-string") { r in
            let pw = password(&r, r.int(14...24))
            return Cred(name: "odbc-connection-string", product: "SQL Server", noun: "connection string", items: [
                Item(key: "SQL_CONNECTION_STRING", value: [
                    lit("Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql-\(r.chars(6, Alpha.lowerDigits)).database.windows.net,1433;Database=sales;Uid=sales_rw;Pwd="),
                    secretSeg(pw, "odbc-password"), lit(";Encrypt=yes;TrustServerCertificate=no;"),
                ]),
            ], header: .none)
        }
        add("url-userinfo") { r in
            let pw = password(&r, r.int(14...24))
            return Cred(name: "url-userinfo", product: "Git", noun: "remote URL", items: [
                Item(key: "REPO_URL", value: [lit("https://\(r.pick(["deploy", "ci-bot", "jenkins"])):"), secretSeg(pw, "url-password"),
                                              lit("@\(r.pick(["git.corp.example", "scm.internal.example.net"]))/\(r.pick(["platform", "web"]))/\(r.pick(["api", "infra"])).git")]),
            ], header: .none)
        }
        add("basic-auth-password") { r in
            let user = r.pick(["admin", "deploy", "svc-reporting", "jenkins"])
            return single("basic-auth-password", "HTTP", "password", "API_PASSWORD", password(&r, r.int(14...24)), .basic(user: user))
        }
        add("generic-password") { r in
            let key = r.pick(["DB_PASSWORD", "POSTGRES_PASSWORD", "MYSQL_ROOT_PASSWORD", "ADMIN_PASSWORD", "SMTP_PASSWORD", "KEYSTORE_PASSWORD"])
            return single("generic-password", "service", "password", key, password(&r, r.int(14...28)), .none)
        }
        add("generic-api-secret") { r in
            let key = r.pick(["CLIENT_SECRET", "APP_SECRET", "SESSION_SECRET", "SIGNING_KEY", "WEBHOOK_SECRET", "ENCRYPTION_KEY"])
            let v = r.chance(0.5) ? r.alnum(r.int(32...48)) : Enc.b64(r.bytes(32))
            return single("generic-api-secret", "service", "secret", key, v, .none)
        }
        return f
    }
}

/// A random RFC 4122 version-4 UUID string from the corpus PRNG.
func uuid4(_ r: inout HoldoutRng) -> String {
    let h = r.hex(32)
    let a = Array(h)
    let variant = r.pick(["8", "9", "a", "b"])
    return "\(String(a[0..<8]))-\(String(a[8..<12]))-4\(String(a[13..<16]))-\(variant)\(String(a[17..<20]))-\(String(a[20..<32]))"
}
