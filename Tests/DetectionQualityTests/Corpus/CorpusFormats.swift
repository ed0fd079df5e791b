// Credential formats, each built from its provider's publicly documented shape.

struct CorpusField {
    let key: String
    let val: CorpusDoc
}

/// One thing to leak (or, for hard negatives, one look-alike): named key/value fields plus hints
/// that carriers use to place it realistically.
struct CorpusItem {
    let format: String
    let desc: String
    var fields: [CorpusField]
    /// How the first field is sent as an HTTP header, if it is a bearer-style credential.
    var headerName: String? = nil
    var headerPrefix: String = ""
    var host: String = "api.example.com"
    /// The first field is a URL (or connection string) that can be used as is.
    var isURL: Bool = false
    var negatives: [String] = []

    var main: CorpusDoc { fields[0].val }
}

enum CorpusFormats {
    typealias Gen = @Sendable (inout CorpusRNG) -> CorpusItem

    // GitHub / npm style: prefix + 30 base62 entropy + 6 base62 CRC32 (of the entropy) checksum.
    static func crcToken(_ r: inout CorpusRNG, prefix: String, entropy: Int = 30) -> String {
        let e = r.alnum(entropy)
        return prefix + e + CorpusEnc.base62(CorpusEnc.crc32(Array(e.utf8)), width: 6)
    }

    static func simple(_ format: String, _ desc: String, key: String, value: String,
                       header: String? = "Authorization", prefix: String = "Bearer ", host: String) -> CorpusItem {
        CorpusItem(format: format, desc: desc, fields: [CorpusField(key: key, val: .secret(format, value))],
             headerName: header, headerPrefix: header == nil ? "" : prefix, host: host)
    }

    static func user(_ r: inout CorpusRNG) -> String {
        r.pick(["deploy", "svc_ci", "app", "admin", "jenkins", "etl_user", "backup", "reporting", "api", "grafana", "airflow", "ops"]) + (r.bool() ? "" : String(r.int(1...99)))
    }
    static func password(_ r: inout CorpusRNG) -> String {
        // Generated passwords as a password manager would produce them; URL-safe so they sit in
        // URLs without percent-encoding.
        var p = r.str(CorpusAlpha.password, r.int(14...28))
        if !p.utf8.contains(where: { $0 >= 48 && $0 <= 57 }) { p += String(r.int(10...99)) }
        return p
    }
    static func host(_ r: inout CorpusRNG, _ kind: String) -> String {
        let env = r.pick(["prod", "staging", "internal", "eu1", "us-east", "core"])
        return "\(kind)-\(env)-\(r.int(1...9)).\(r.pick(["corp.acme.io", "svc.cluster.local", "db.internal", "example-co.net"]))"
    }

    // MARK: PEM

    static func rsaDER(_ r: inout CorpusRNG, pkcs8: Bool) -> [UInt8] {
        // DER SEQUENCE of a 2048-bit RSAPrivateKey (PKCS#1), optionally wrapped in PKCS#8.
        var body: [UInt8] = [0x02, 0x01, 0x00, 0x02, 0x82, 0x01, 0x01, 0x00] + r.bytes(256) + [0x02, 0x03, 0x01, 0x00, 0x01]
        body += [0x02, 0x82, 0x01, 0x00] + r.bytes(256)
        for _ in 0..<2 { body += [0x02, 0x81, 0x81, 0x00] + r.bytes(128) }
        for _ in 0..<3 { body += [0x02, 0x81, 0x80] + r.bytes(128) }
        var der: [UInt8] = [0x30, 0x82, UInt8(body.count >> 8), UInt8(body.count & 255)] + body
        if pkcs8 {
            let alg: [UInt8] = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]
            let oct: [UInt8] = [0x04, 0x82, UInt8(der.count >> 8), UInt8(der.count & 255)] + der
            let inner: [UInt8] = [0x02, 0x01, 0x00] + alg + oct
            der = [0x30, 0x82, UInt8(inner.count >> 8), UInt8(inner.count & 255)] + inner
        }
        return der
    }
    static func pem(_ label: String, _ der: [UInt8]) -> String {
        "-----BEGIN \(label)-----\n" + CorpusEnc.wrap(CorpusEnc.base64(der)) + "\n-----END \(label)-----\n"
    }
    static func pemRSA(_ r: inout CorpusRNG) -> String { pem("RSA PRIVATE KEY", rsaDER(&r, pkcs8: false)) }
    static func pemPKCS8(_ r: inout CorpusRNG) -> String { pem("PRIVATE KEY", rsaDER(&r, pkcs8: true)) }
    static func pemEC(_ r: inout CorpusRNG) -> String {
        // RFC 5915 ECPrivateKey on prime256v1.
        let der: [UInt8] = [0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x20] + r.bytes(32)
            + [0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]
            + [0xa1, 0x44, 0x03, 0x42, 0x00, 0x04] + r.bytes(64)
        return pem("EC PRIVATE KEY", der)
    }
    static func pemOpenSSH(_ r: inout CorpusRNG) -> String {
        // openssh-key-v1, unencrypted ed25519.
        func u32(_ n: Int) -> [UInt8] { [UInt8(n >> 24 & 255), UInt8(n >> 16 & 255), UInt8(n >> 8 & 255), UInt8(n & 255)] }
        func sstr(_ b: [UInt8]) -> [UInt8] { u32(b.count) + b }
        let pub = r.bytes(32)
        let pubBlob = sstr(Array("ssh-ed25519".utf8)) + sstr(pub)
        let check = r.bytes(4)
        var priv = check + check + sstr(Array("ssh-ed25519".utf8)) + sstr(pub) + sstr(r.bytes(32) + pub) + sstr(Array("ci@runner".utf8))
        var pad: UInt8 = 1
        while priv.count % 8 != 0 { priv.append(pad); pad += 1 }
        let blob = Array("openssh-key-v1".utf8) + [0] + sstr(Array("none".utf8)) + sstr(Array("none".utf8)) + sstr([])
            + u32(1) + sstr(pubBlob) + sstr(priv)
        return "-----BEGIN OPENSSH PRIVATE KEY-----\n" + CorpusEnc.wrap(CorpusEnc.base64(blob), 70) + "\n-----END OPENSSH PRIVATE KEY-----\n"
    }

    // MARK: JWT

    static func jwt(_ r: inout CorpusRNG) -> String {
        let rs = r.bool()
        let header = rs ? "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"\(r.hex(16))\"}" : "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
        let iat = 1_760_000_000 + r.int(20_000_000)
        let payload = "{\"sub\":\"\(r.uuid())\",\"iss\":\"https://\(r.pick(["auth.acme.io", "login.example-co.net", "sso.internal"]))/\",\"aud\":\"\(r.pick(["api", "billing", "gateway"]))\",\"iat\":\(iat),\"exp\":\(iat + 3600),\"scope\":\"\(r.pick(["read write", "admin", "repo:read"]))\"}"
        return CorpusEnc.base64(header, url: true, pad: false) + "." + CorpusEnc.base64(payload, url: true, pad: false) + "." + CorpusEnc.base64(r.bytes(rs ? 256 : 32), url: true, pad: false)
    }

    // MARK: - The list

    static let all: [(String, Gen)] = [
        // --- GitHub (github.blog 2021-04-05 "Behind GitHub's new authentication token formats")
        ("github-pat-classic", { r in simple("github-pat-classic", "GitHub personal access token", key: "GITHUB_TOKEN", value: crcToken(&r, prefix: "ghp_"), prefix: r.bool() ? "token " : "Bearer ", host: "api.github.com") }),
        ("github-oauth-token", { r in simple("github-oauth-token", "GitHub OAuth access token", key: "GH_OAUTH_TOKEN", value: crcToken(&r, prefix: "gho_"), host: "api.github.com") }),
        ("github-app-user-token", { r in simple("github-app-user-token", "GitHub App user-to-server token", key: "GH_USER_TOKEN", value: crcToken(&r, prefix: "ghu_"), host: "api.github.com") }),
        ("github-app-installation-token", { r in simple("github-app-installation-token", "GitHub App installation token", key: "GH_INSTALLATION_TOKEN", value: crcToken(&r, prefix: "ghs_"), prefix: "token ", host: "api.github.com") }),
        ("github-refresh-token", { r in simple("github-refresh-token", "GitHub App refresh token", key: "GH_REFRESH_TOKEN", value: "ghr_" + r.alnum(76), header: nil, host: "github.com") }),
        ("github-pat-fine-grained", { r in simple("github-pat-fine-grained", "GitHub fine-grained personal access token", key: "GH_PAT", value: "github_pat_" + r.alnum(22) + "_" + r.alnum(59), host: "api.github.com") }),
        // --- GitLab (docs.gitlab.com "Token prefixes")
        ("gitlab-pat", { r in simple("gitlab-pat", "GitLab personal access token", key: "GITLAB_TOKEN", value: r.bool() ? "glpat-" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 20) : "glpat-" + r.str(CorpusAlpha.base64url, 27) + ".01." + r.str(CorpusAlpha.lowerDigits, 9), header: "PRIVATE-TOKEN", prefix: "", host: "gitlab.com") }),
        ("gitlab-pipeline-trigger-token", { r in simple("gitlab-pipeline-trigger-token", "GitLab pipeline trigger token", key: "TRIGGER_TOKEN", value: "glptt-" + r.hex(40), header: nil, host: "gitlab.com") }),
        ("gitlab-runner-token", { r in simple("gitlab-runner-token", "GitLab runner authentication token", key: "RUNNER_TOKEN", value: "glrt-" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 20), header: nil, host: "gitlab.com") }),
        ("gitlab-deploy-token", { r in simple("gitlab-deploy-token", "GitLab deploy token", key: "CI_DEPLOY_PASSWORD", value: "gldt-" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 20), header: nil, host: "registry.gitlab.com") }),
        // --- Slack (api.slack.com/authentication/token-types)
        ("slack-bot-token", { r in simple("slack-bot-token", "Slack bot token", key: "SLACK_BOT_TOKEN", value: "xoxb-\(r.digits(r.int(10...13)))-\(r.digits(r.int(10...13)))-\(r.alnum(24))", host: "slack.com") }),
        ("slack-user-token", { r in simple("slack-user-token", "Slack user token", key: "SLACK_USER_TOKEN", value: "xoxp-\(r.digits(r.int(10...13)))-\(r.digits(r.int(10...13)))-\(r.digits(r.int(10...13)))-\(r.hex(32))", host: "slack.com") }),
        ("slack-app-token", { r in simple("slack-app-token", "Slack app-level token", key: "SLACK_APP_TOKEN", value: "xapp-1-A\(r.str(CorpusAlpha.upperDigits, 10))-\(r.digits(13))-\(r.hex(64))", host: "slack.com") }),
        ("slack-legacy-workspace-token", { r in simple("slack-legacy-workspace-token", "Slack legacy workspace app token", key: "SLACK_TOKEN", value: "xoxa-2-\(r.digits(12))-\(r.digits(12))-\(r.digits(12))-\(r.hex(64))", host: "slack.com") }),
        ("slack-webhook-url", { r in
            let url = "https://hooks.slack.com/services/T\(r.str(CorpusAlpha.upperDigits, r.int(8...10)))/B\(r.str(CorpusAlpha.upperDigits, r.int(8...10)))/\(r.alnum(24))"
            var it = simple("slack-webhook-url", "Slack incoming webhook URL", key: "SLACK_WEBHOOK_URL", value: url, header: nil, host: "hooks.slack.com")
            it.isURL = true; return it
        }),
        // --- Stripe (docs.stripe.com/keys)
        ("stripe-secret-key", { r in simple("stripe-secret-key", "Stripe secret key", key: "STRIPE_SECRET_KEY", value: (r.bool() ? "sk_live_" : "sk_test_") + (r.bool() ? r.alnum(24) : r.alnum(99)), host: "api.stripe.com") }),
        ("stripe-restricted-key", { r in simple("stripe-restricted-key", "Stripe restricted key", key: "STRIPE_API_KEY", value: "rk_live_" + r.alnum(r.bool() ? 24 : 99), host: "api.stripe.com") }),
        ("stripe-webhook-secret", { r in simple("stripe-webhook-secret", "Stripe webhook signing secret", key: "STRIPE_WEBHOOK_SECRET", value: "whsec_" + r.alnum(32), header: nil, host: "api.stripe.com") }),
        // --- OpenAI / Anthropic (platform docs: "sk-proj-", "sk-ant-api03-")
        ("openai-api-key", { r in
            let v: String
            switch r.int(3) {
            case 0: v = "sk-proj-" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 74) + "T3BlbkFJ" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 74)
            case 1: v = "sk-svcacct-" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 74) + "T3BlbkFJ" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 74)
            default: v = "sk-" + r.alnum(20) + "T3BlbkFJ" + r.alnum(20)
            }
            return simple("openai-api-key", "OpenAI API key", key: "OPENAI_API_KEY", value: v, host: "api.openai.com")
        }),
        ("anthropic-api-key", { r in
            let admin = r.int(4) == 0
            let v = (admin ? "sk-ant-admin01-" : "sk-ant-api03-") + r.str(CorpusAlpha.base62 + Array("_-".utf8), 93) + "AA"
            return simple("anthropic-api-key", "Anthropic API key", key: admin ? "ANTHROPIC_ADMIN_KEY" : "ANTHROPIC_API_KEY", value: v, header: "x-api-key", prefix: "", host: "api.anthropic.com")
        }),
        // --- HashiCorp Vault (developer.hashicorp.com/vault/docs/concepts/tokens#token-prefixes)
        ("vault-service-token", { r in simple("vault-service-token", "Vault service token", key: "VAULT_TOKEN", value: "hvs." + (r.bool() ? r.alnum(24) : "CAESI" + r.str(CorpusAlpha.base64url, 86)), header: "X-Vault-Token", prefix: "", host: "vault.internal:8200") }),
        ("vault-batch-token", { r in simple("vault-batch-token", "Vault batch token", key: "VAULT_TOKEN", value: "hvb.AAAAAQ" + r.str(CorpusAlpha.base64url, 128), header: "X-Vault-Token", prefix: "", host: "vault.internal:8200") }),
        // --- Atlassian (support.atlassian.com "API tokens"; Data Center PATs are 44-char base64)
        ("atlassian-api-token", { r in
            let v = "ATATT3xFfGF0" + r.str(CorpusAlpha.base64url, 170) + "=" + r.str(CorpusAlpha.hexUpper, 8)
            var it = simple("atlassian-api-token", "Atlassian API token", key: "JIRA_API_TOKEN", value: v, header: nil, host: "acme.atlassian.net")
            it.fields.append(CorpusField(key: "JIRA_USER", val: .ident("username", "\(user(&r))@acme.io"))); return it
        }),
        ("atlassian-dc-pat", { r in
            let v = CorpusEnc.base64(r.digits(12) + ":" + CorpusEnc.base64(r.bytes(18))) // "<id>:<secret>" base64, as issued by Jira/Confluence DC
            return simple("atlassian-dc-pat", "Jira Data Center personal access token", key: "JIRA_PAT", value: String(v.prefix(44)), host: "jira.corp.acme.io")
        }),
        ("bitbucket-app-password", { r in
            var it = simple("bitbucket-app-password", "Bitbucket app password", key: "BITBUCKET_APP_PASSWORD", value: "ATBB" + r.alnum(28) + r.str(CorpusAlpha.hexUpper, 8), header: nil, host: "api.bitbucket.org")
            it.fields.append(CorpusField(key: "BITBUCKET_USERNAME", val: .ident("username", user(&r)))); return it
        }),
        // --- SonarQube (docs.sonarsource.com: squ_/sqp_/sqa_ + 40 hex)
        ("sonarqube-token", { r in simple("sonarqube-token", "SonarQube token", key: "SONAR_TOKEN", value: r.pick(["squ_", "sqp_", "sqa_"]) + r.hex(40), host: "sonar.corp.acme.io") }),
        // --- Tableau PAT secret: base64(16 bytes) ":" 32 alnum
        ("tableau-pat", { r in
            var it = simple("tableau-pat", "Tableau personal access token secret", key: "TABLEAU_PAT_SECRET", value: CorpusEnc.base64(r.bytes(16)) + ":" + r.alnum(32), header: nil, host: "tableau.corp.acme.io")
            it.fields.append(CorpusField(key: "TABLEAU_PAT_NAME", val: .ident("username", "ci-" + user(&r)))); return it
        }),
        // --- Octopus Deploy: API- followed by uppercase alphanumerics
        ("octopus-api-key", { r in simple("octopus-api-key", "Octopus Deploy API key", key: "OCTOPUS_API_KEY", value: "API-" + r.str(CorpusAlpha.upperDigits, r.pick([26, 27])), header: "X-Octopus-ApiKey", prefix: "", host: "octopus.corp.acme.io") }),
        // --- Duo (duo.com/docs: ikey DI + 18, skey 40, api-xxxxxxxx.duosecurity.com)
        ("duo-secret-key", { r in
            CorpusItem(format: "duo-secret-key", desc: "Duo Admin API secret key", fields: [
                CorpusField(key: "DUO_SKEY", val: .secret("duo-secret-key", r.alnum(40))),
                CorpusField(key: "DUO_IKEY", val: .ident("duo-integration-key", "DI" + r.str(CorpusAlpha.upperDigits, 18))),
                CorpusField(key: "DUO_HOST", val: CorpusDoc("api-\(r.hex(8)).duosecurity.com")),
            ], host: "api-\(r.hex(8)).duosecurity.com")
        }),
        ("shippo-token", { r in simple("shippo-token", "Shippo API token", key: "SHIPPO_API_TOKEN", value: (r.bool() ? "shippo_live_" : "shippo_test_") + r.hex(40), prefix: "ShippoToken ", host: "api.goshippo.com") }),
        ("smartsheet-token", { r in simple("smartsheet-token", "Smartsheet access token", key: "SMARTSHEET_ACCESS_TOKEN", value: r.alnum(r.bool() ? 26 : 37), host: "api.smartsheet.com") }),
        // --- Sidekiq Pro/Enterprise: BUNDLE_GEMS__CONTRIBSYS__COM=<8 hex>:<8 hex>
        ("sidekiq-credentials", { r in
            let v = r.hex(8) + ":" + r.hex(8)
            return CorpusItem(format: "sidekiq-credentials", desc: "Sidekiq Enterprise gem server credentials", fields: [CorpusField(key: r.pick(["BUNDLE_ENTERPRISE__CONTRIBSYS__COM", "BUNDLE_GEMS__CONTRIBSYS__COM"]), val: .secret("sidekiq-credentials", v))], host: "gems.contribsys.com")
        }),
        // --- Sumo Logic access id (su + 12) / key (64)
        ("sumologic-access-key", { r in
            CorpusItem(format: "sumologic-access-key", desc: "Sumo Logic access key", fields: [
                CorpusField(key: "SUMO_ACCESS_KEY", val: .secret("sumologic-access-key", r.alnum(64))),
                CorpusField(key: "SUMO_ACCESS_ID", val: .ident("sumologic-access-id", "su" + r.alnum(12))),
            ], host: "api.sumologic.com")
        }),
        // --- Shopify (shopify.dev: shpat_/shpca_/shppa_/shpss_ + 32 hex)
        ("shopify-token", { r in
            let p = r.pick(["shpat_", "shpca_", "shppa_", "shpss_"])
            return simple("shopify-token", "Shopify access token", key: p == "shpss_" ? "SHOPIFY_SHARED_SECRET" : "SHOPIFY_ACCESS_TOKEN", value: p + r.hex(32), header: "X-Shopify-Access-Token", prefix: "", host: "acme-store.myshopify.com")
        }),
        // --- Salesforce access token: 00D<org id>!<session>
        ("salesforce-access-token", { r in simple("salesforce-access-token", "Salesforce access token", key: "SF_ACCESS_TOKEN", value: "00D" + r.str(CorpusAlpha.base62, 12) + "!" + r.str(CorpusAlpha.base62 + Array("._".utf8), 96), host: "acme.my.salesforce.com") }),
        // --- Twilio (Account SID AC+32 hex, auth token 32 hex; API key SK+32 hex and 32-char secret)
        ("twilio-auth-token", { r in
            CorpusItem(format: "twilio-auth-token", desc: "Twilio auth token", fields: [
                CorpusField(key: "TWILIO_AUTH_TOKEN", val: .secret("twilio-auth-token", r.hex(32))),
                CorpusField(key: "TWILIO_ACCOUNT_SID", val: .ident("twilio-account-sid", "AC" + r.hex(32))),
            ], host: "api.twilio.com")
        }),
        ("twilio-api-key-secret", { r in
            CorpusItem(format: "twilio-api-key-secret", desc: "Twilio API key secret", fields: [
                CorpusField(key: "TWILIO_API_SECRET", val: .secret("twilio-api-key-secret", r.alnum(32))),
                CorpusField(key: "TWILIO_API_KEY", val: .ident("twilio-api-key-sid", "SK" + r.hex(32))),
            ], host: "api.twilio.com")
        }),
        // --- SendGrid: SG.<22>.<43>
        ("sendgrid-api-key", { r in simple("sendgrid-api-key", "SendGrid API key", key: "SENDGRID_API_KEY", value: "SG." + r.str(CorpusAlpha.base64url, 22) + "." + r.str(CorpusAlpha.base64url, 43), host: "api.sendgrid.com") }),
        // --- npm (github.blog changelog 2021-09-23: npm_ + 30 + CRC32 base62)
        ("npm-token", { r in simple("npm-token", "npm access token", key: "NPM_TOKEN", value: crcToken(&r, prefix: "npm_"), host: "registry.npmjs.org") }),
        // --- PyPI (pypi.org/help: macaroon, "pypi-" + base64 starting AgEIcHlwaS5vcmc)
        ("pypi-token", { r in
            var it = simple("pypi-token", "PyPI API token", key: "TWINE_PASSWORD", value: "pypi-AgEIcHlwaS5vcmcCJD" + r.str(CorpusAlpha.base64url, r.int(140...190)), header: nil, host: "upload.pypi.org")
            it.fields.append(CorpusField(key: "TWINE_USERNAME", val: CorpusDoc("__token__"))); return it
        }),
        // --- Docker Hub PAT (docs.docker.com: dckr_pat_)
        ("dockerhub-pat", { r in
            var it = simple("dockerhub-pat", "Docker Hub personal access token", key: "DOCKERHUB_TOKEN", value: "dckr_pat_" + r.str(CorpusAlpha.base62 + Array("_-".utf8), 27), header: nil, host: "hub.docker.com")
            it.fields.append(CorpusField(key: "DOCKERHUB_USERNAME", val: .ident("username", user(&r)))); return it
        }),
        // --- Hugging Face (hf_ + 34 letters)
        ("huggingface-token", { r in simple("huggingface-token", "Hugging Face access token", key: "HF_TOKEN", value: "hf_" + r.str(CorpusAlpha.letters, 34), host: "huggingface.co") }),
        // --- Datadog (API key 32 hex, application key 40 hex)
        ("datadog-api-key", { r in simple("datadog-api-key", "Datadog API key", key: "DD_API_KEY", value: r.hex(32), header: "DD-API-KEY", prefix: "", host: "api.datadoghq.com") }),
        ("datadog-app-key", { r in
            CorpusItem(format: "datadog-app-key", desc: "Datadog application key", fields: [
                CorpusField(key: "DD_APP_KEY", val: .secret("datadog-app-key", r.hex(40))),
                CorpusField(key: "DD_API_KEY", val: .secret("datadog-api-key", r.hex(32))),
            ], headerName: "DD-APPLICATION-KEY", host: "api.datadoghq.eu")
        }),
        // --- AWS (docs.aws.amazon.com IAM: AKIA/ASIA + 16 base32 id; 40-char secret)
        ("aws-secret-access-key", { r in
            CorpusItem(format: "aws-secret-access-key", desc: "AWS secret access key", fields: [
                CorpusField(key: "AWS_SECRET_ACCESS_KEY", val: .secret("aws-secret-access-key", r.str(CorpusAlpha.base64, 40))),
                CorpusField(key: "AWS_ACCESS_KEY_ID", val: .ident("aws-access-key-id", "AKIA" + r.str(CorpusAlpha.base32, 16))),
                CorpusField(key: "AWS_DEFAULT_REGION", val: CorpusDoc(r.pick(["us-east-1", "eu-west-1", "eu-central-1", "ap-southeast-2"]))),
            ], host: "sts.amazonaws.com")
        }),
        ("aws-session-token", { r in
            CorpusItem(format: "aws-session-token", desc: "AWS temporary credentials", fields: [
                CorpusField(key: "AWS_SESSION_TOKEN", val: .secret("aws-session-token", "IQoJb3JpZ2luX2Vj" + r.str(CorpusAlpha.base64, r.int(120...180) * 4))),
                CorpusField(key: "AWS_SECRET_ACCESS_KEY", val: .secret("aws-secret-access-key", r.str(CorpusAlpha.base64, 40))),
                CorpusField(key: "AWS_ACCESS_KEY_ID", val: .ident("aws-access-key-id", "ASIA" + r.str(CorpusAlpha.base32, 16))),
            ], host: "s3.amazonaws.com")
        }),
        // --- GCP service account key file (cloud.google.com/iam/docs/keys-create-delete)
        ("gcp-service-account-key", { r in
            let project = r.pick(["acme-prod", "data-platform", "ml-training", "billing-etl"]) + "-" + String(r.int(100_000...999_999))
            let sa = r.pick(["ci-deployer", "terraform", "bq-loader", "gke-node"])
            let pemKey = pemPKCS8(&r)
            var d = CorpusDoc("{\n  \"type\": \"service_account\",\n  \"project_id\": \"\(project)\",\n  \"private_key_id\": \"")
            d += CorpusDoc.ident("gcp-private-key-id", r.hex(40))
            d += "\",\n  \"private_key\": \""
            d += CorpusDoc.secret("gcp-service-account-key", pemKey).json()
            d += "\",\n  \"client_email\": \"\(sa)@\(project).iam.gserviceaccount.com\",\n  \"client_id\": \"\(r.digits(21))\",\n  \"auth_uri\": \"https://accounts.google.com/o/oauth2/auth\",\n  \"token_uri\": \"https://oauth2.googleapis.com/token\",\n  \"auth_provider_x509_cert_url\": \"https://www.googleapis.com/oauth2/v1/certs\",\n  \"client_x509_cert_url\": \"https://www.googleapis.com/robot/v1/metadata/x509/\(sa)%40\(project).iam.gserviceaccount.com\",\n  \"universe_domain\": \"googleapis.com\"\n}"
            if r.bool() { d = d.map { $0.replacing("\n  ", with: "").replacing("\n}", with: "}") } }
            return CorpusItem(format: "gcp-service-account-key", desc: "GCP service account key", fields: [CorpusField(key: "GOOGLE_CREDENTIALS", val: d)], host: "oauth2.googleapis.com")
        }),
        // --- PEM private keys
        ("private-key-rsa", { r in CorpusItem(format: "private-key-rsa", desc: "RSA private key", fields: [CorpusField(key: "SSH_PRIVATE_KEY", val: .secret("private-key-rsa", pemRSA(&r)))]) }),
        ("private-key-ec", { r in CorpusItem(format: "private-key-ec", desc: "EC private key", fields: [CorpusField(key: "TLS_KEY", val: .secret("private-key-ec", pemEC(&r)))]) }),
        ("private-key-openssh", { r in CorpusItem(format: "private-key-openssh", desc: "OpenSSH private key", fields: [CorpusField(key: "DEPLOY_KEY", val: .secret("private-key-openssh", pemOpenSSH(&r)))]) }),
        ("private-key-pkcs8", { r in CorpusItem(format: "private-key-pkcs8", desc: "PKCS#8 private key", fields: [CorpusField(key: "JWT_SIGNING_KEY", val: .secret("private-key-pkcs8", pemPKCS8(&r)))]) }),
        // --- JWT (RFC 7519)
        ("jwt", { r in simple("jwt", "JWT bearer token", key: "ACCESS_TOKEN", value: jwt(&r), host: "api.acme.io") }),
        // --- Azure Storage connection string (learn.microsoft.com "Configure Azure Storage connection strings")
        ("azure-storage-account-key", { r in
            let acct = r.pick(["acmeprod", "datalake", "backups", "tfstate"]) + String(r.int(10...999))
            var d = CorpusDoc("DefaultEndpointsProtocol=https;AccountName=\(acct);AccountKey=")
            d += CorpusDoc.secret("azure-storage-account-key", CorpusEnc.base64(r.bytes(64)))
            d += ";EndpointSuffix=core.windows.net"
            var it = CorpusItem(format: "azure-storage-account-key", desc: "Azure Storage connection string", fields: [CorpusField(key: "AZURE_STORAGE_CONNECTION_STRING", val: d)], host: "\(acct).blob.core.windows.net")
            it.isURL = true; return it
        }),
        // --- Azure SAS URL (learn.microsoft.com "Create a service SAS": sig = base64 HMAC-SHA256)
        ("azure-sas-signature", { r in
            let acct = r.pick(["acmeprod", "artifacts", "exports"]) + String(r.int(10...999))
            let sig = CorpusEnc.base64(r.bytes(32))
            var d = CorpusDoc("https://\(acct).blob.core.windows.net/\(r.pick(["builds", "exports", "uploads"]))/\(r.hex(8)).tar.gz?sv=2022-11-02&ss=b&srt=co&sp=\(r.pick(["r", "rw", "racwdl"]))&se=2026-12-\(r.int(10...28))T\(r.int(10...23)):00:00Z&st=2026-11-01T00:00:00Z&spr=https&sig=")
            d += CorpusDoc.secret("azure-sas-signature", sig).percent()
            var it = CorpusItem(format: "azure-sas-signature", desc: "Azure SAS URL", fields: [CorpusField(key: "AZURE_SAS_URL", val: d)], host: "\(acct).blob.core.windows.net")
            it.isURL = true; return it
        }),
        // --- Cosmos DB (learn.microsoft.com: AccountEndpoint=...;AccountKey=<88 base64>;)
        ("azure-cosmosdb-key", { r in
            let acct = r.pick(["orders", "catalog", "sessions"]) + "-" + r.pick(["prod", "dev"])
            var d = CorpusDoc("AccountEndpoint=https://\(acct).documents.azure.com:443/;AccountKey=")
            d += CorpusDoc.secret("azure-cosmosdb-key", CorpusEnc.base64(r.bytes(64)))
            d += ";"
            var it = CorpusItem(format: "azure-cosmosdb-key", desc: "Cosmos DB connection string", fields: [CorpusField(key: "COSMOS_CONNECTION_STRING", val: d)], host: "\(acct).documents.azure.com")
            it.isURL = true; return it
        }),
        // --- Database / broker URLs with passwords (RFC 3986 userinfo)
        ("postgres-url-password", { r in dbURL(&r, "postgres-url-password", "PostgreSQL URL", scheme: r.pick(["postgres", "postgresql"]), port: 5432, key: "DATABASE_URL", path: "/app?sslmode=require") }),
        ("mysql-url-password", { r in dbURL(&r, "mysql-url-password", "MySQL URL", scheme: r.pick(["mysql", "mysql2"]), port: 3306, key: "MYSQL_URL", path: "/shop") }),
        ("mongodb-url-password", { r in dbURL(&r, "mongodb-url-password", "MongoDB connection string", scheme: r.pick(["mongodb", "mongodb+srv"]), port: nil, key: "MONGODB_URI", path: "/orders?retryWrites=true&w=majority") }),
        ("redis-url-password", { r in dbURL(&r, "redis-url-password", "Redis URL", scheme: r.pick(["redis", "rediss"]), port: 6379, key: "REDIS_URL", path: "/0", noUser: r.bool()) }),
        ("amqp-url-password", { r in dbURL(&r, "amqp-url-password", "AMQP URL", scheme: r.pick(["amqp", "amqps"]), port: 5672, key: "RABBITMQ_URL", path: "/%2F") }),
        ("basic-auth-url-password", { r in dbURL(&r, "basic-auth-url-password", "URL with credentials", scheme: "https", port: nil, key: "ARTIFACTORY_URL", path: "/artifactory/api/npm/npm-remote/") }),
        ("jdbc-password", { r in
            let u = user(&r), p = password(&r), h = host(&r, "db")
            var d: CorpusDoc
            if r.bool() {
                d = CorpusDoc("jdbc:postgresql://\(h):5432/ledger?user=") + CorpusDoc.ident("username", u) + "&password=" + CorpusDoc.secret("jdbc-password", p) + "&ssl=true"
            } else {
                d = CorpusDoc("jdbc:sqlserver://\(h):1433;databaseName=ledger;user=") + CorpusDoc.ident("username", u) + ";password=" + CorpusDoc.secret("jdbc-password", p) + ";encrypt=true"
            }
            var it = CorpusItem(format: "jdbc-password", desc: "JDBC URL", fields: [CorpusField(key: "SPRING_DATASOURCE_URL", val: d)], host: h)
            it.isURL = true; return it
        }),
        ("odbc-password", { r in
            let u = user(&r), p = password(&r), h = host(&r, "sql")
            let d = CorpusDoc("Driver={ODBC Driver 18 for SQL Server};Server=tcp:\(h),1433;Database=warehouse;Uid=") + CorpusDoc.ident("username", u) + ";Pwd=" + CorpusDoc.secret("odbc-password", p) + ";Encrypt=yes;TrustServerCertificate=no;"
            var it = CorpusItem(format: "odbc-password", desc: "ODBC connection string", fields: [CorpusField(key: "SQL_CONNECTION_STRING", val: d)], host: h)
            it.isURL = true; return it
        }),
        // --- Docker config.json auths (docs.docker.com: auth = base64("user:password"))
        ("docker-config-auth", { r in
            let reg = r.pick(["https://index.docker.io/v1/", "ghcr.io", "registry.gitlab.com", "\(r.digits(12)).dkr.ecr.us-east-1.amazonaws.com", "acme.azurecr.io"])
            let u = user(&r), p = password(&r)
            let auth = (CorpusDoc.secret("docker-config-auth", u + ":" + p)).base64()
            let d = CorpusDoc("{\n  \"auths\": {\n    \"\(reg)\": {\n      \"auth\": \"") + auth + "\"\n    }\n  }\n}"
            return CorpusItem(format: "docker-config-auth", desc: "Docker config.json", fields: [CorpusField(key: "DOCKER_AUTH_CONFIG", val: d)], host: reg)
        }),
        // --- curl -u user:password style credentials (HTTP Basic, RFC 7617)
        ("basic-auth-password", { r in
            CorpusItem(format: "basic-auth-password", desc: "HTTP basic auth credentials", fields: [
                CorpusField(key: "REGISTRY_PASSWORD", val: .secret("basic-auth-password", password(&r))),
                CorpusField(key: "REGISTRY_USER", val: .ident("username", user(&r))),
            ], host: "nexus.corp.acme.io")
        }),
        // --- More prefixed tokens, each from its vendor's documented shape.
        ("google-oauth-client-secret", { r in
            var it = simple("google-oauth-client-secret", "Google OAuth client secret", key: "GOOGLE_CLIENT_SECRET", value: "GOCSPX-" + r.str(CorpusAlpha.base64url, 28), header: nil, host: "oauth2.googleapis.com")
            it.fields.append(CorpusField(key: "GOOGLE_CLIENT_ID", val: CorpusDoc("\(r.digits(12))-\(r.str(CorpusAlpha.lowerDigits, 32)).apps.googleusercontent.com"))); return it
        }),
        ("azure-ad-client-secret", { r in
            var it = simple("azure-ad-client-secret", "Azure AD (Entra ID) client secret", key: "AZURE_CLIENT_SECRET", value: r.str(CorpusAlpha.base62, 3) + String(r.int(0...9)) + "Q~" + r.str(CorpusAlpha.base62 + Array("_.~-".utf8), 34), header: nil, host: "login.microsoftonline.com")
            it.fields.append(CorpusField(key: "AZURE_CLIENT_ID", val: CorpusDoc(r.uuid())))
            it.fields.append(CorpusField(key: "AZURE_TENANT_ID", val: CorpusDoc(r.uuid()))); return it
        }),
        ("postman-api-key", { r in simple("postman-api-key", "Postman API key", key: "POSTMAN_API_KEY", value: "PMAK-" + r.hex(24) + "-" + r.hex(34), header: "X-Api-Key", prefix: "", host: "api.getpostman.com") }),
        ("linear-api-key", { r in simple("linear-api-key", "Linear API key", key: "LINEAR_API_KEY", value: "lin_api_" + r.alnum(40), prefix: "", host: "api.linear.app") }),
        ("doppler-token", { r in simple("doppler-token", "Doppler token", key: "DOPPLER_TOKEN", value: r.pick(["dp.pt.", "dp.st.", "dp.sa."]) + r.alnum(43), host: "api.doppler.com") }),
        ("pulumi-access-token", { r in simple("pulumi-access-token", "Pulumi access token", key: "PULUMI_ACCESS_TOKEN", value: "pul-" + r.hex(40), prefix: "token ", host: "api.pulumi.com") }),
        ("terraform-cloud-token", { r in simple("terraform-cloud-token", "Terraform Cloud API token", key: "TF_TOKEN_app_terraform_io", value: r.alnum(14) + ".atlasv1." + r.str(CorpusAlpha.base64url, 67), host: "app.terraform.io") }),
        ("grafana-service-account-token", { r in simple("grafana-service-account-token", "Grafana service account token", key: "GRAFANA_TOKEN", value: "glsa_" + r.alnum(32) + "_" + r.hex(8), host: "grafana.corp.acme.io") }),
        ("newrelic-user-key", { r in simple("newrelic-user-key", "New Relic user API key", key: "NEW_RELIC_API_KEY", value: "NRAK-" + r.str(CorpusAlpha.upperDigits, 27), header: "Api-Key", prefix: "", host: "api.newrelic.com") }),
        ("sentry-auth-token", { r in
            let v = r.bool() ? "sntryu_" + r.hex(64) : "sntrys_" + CorpusEnc.base64("{\"iat\":\(1_760_000_000 + r.int(9_000_000)),\"url\":\"https://sentry.io\",\"region_url\":\"https://us.sentry.io\",\"org\":\"acme\"}", pad: false) + "_" + r.str(CorpusAlpha.base64, 43)
            return simple("sentry-auth-token", "Sentry auth token", key: "SENTRY_AUTH_TOKEN", value: v, host: "sentry.io")
        }),
        ("digitalocean-token", { r in simple("digitalocean-token", "DigitalOcean personal access token", key: "DIGITALOCEAN_ACCESS_TOKEN", value: r.pick(["dop_v1_", "doo_v1_"]) + r.hex(64), host: "api.digitalocean.com") }),
        ("databricks-token", { r in simple("databricks-token", "Databricks personal access token", key: "DATABRICKS_TOKEN", value: "dapi" + r.hex(32) + (r.bool() ? "-\(r.int(2...4))" : ""), host: "adb-\(r.digits(16)).\(r.int(1...19)).azuredatabricks.net") }),
        ("figma-token", { r in simple("figma-token", "Figma personal access token", key: "FIGMA_TOKEN", value: "figd_" + r.str(CorpusAlpha.base64url, 40), header: "X-Figma-Token", prefix: "", host: "api.figma.com") }),
        ("notion-token", { r in simple("notion-token", "Notion integration token", key: "NOTION_TOKEN", value: "ntn_" + r.digits(11) + r.alnum(35), host: "api.notion.com") }),
        ("telegram-bot-token", { r in simple("telegram-bot-token", "Telegram bot token", key: "TELEGRAM_BOT_TOKEN", value: r.digits(r.int(9...10)) + ":AA" + r.str(CorpusAlpha.base64url, 33), header: nil, host: "api.telegram.org") }),
        ("discord-webhook-url", { r in
            var it = simple("discord-webhook-url", "Discord webhook URL", key: "DISCORD_WEBHOOK", value: "https://discord.com/api/webhooks/\(r.digits(19))/" + r.str(CorpusAlpha.base64url, 68), header: nil, host: "discord.com")
            it.isURL = true; return it
        }),
        ("mailgun-api-key", { r in simple("mailgun-api-key", "Mailgun API key", key: "MAILGUN_API_KEY", value: r.bool() ? "key-" + r.hex(32) : r.hex(32) + "-" + r.hex(8) + "-" + r.hex(8), header: nil, host: "api.mailgun.net") }),
        ("cloudflare-api-token", { r in simple("cloudflare-api-token", "Cloudflare API token", key: "CLOUDFLARE_API_TOKEN", value: r.str(CorpusAlpha.base62 + Array("_-".utf8), 40), host: "api.cloudflare.com") }),
        ("age-secret-key", { r in simple("age-secret-key", "age secret key", key: "SOPS_AGE_KEY", value: "AGE-SECRET-KEY-1" + r.str(Array("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L".utf8), 58), header: nil, host: "localhost") }),
        ("rails-master-key", { r in simple("rails-master-key", "Rails master key", key: "RAILS_MASTER_KEY", value: r.hex(32), header: nil, host: "localhost") }),
        ("django-secret-key", { r in simple("django-secret-key", "Django SECRET_KEY", key: "DJANGO_SECRET_KEY", value: r.str(CorpusAlpha.lowerDigits + Array("!@%^&*(-_=+)".utf8), 50), header: nil, host: "localhost") }),
        ("config-password", { r in
            var it = simple("config-password", "database password", key: r.pick(["DB_PASSWORD", "POSTGRES_PASSWORD", "MYSQL_ROOT_PASSWORD", "SMTP_PASSWORD", "LDAP_BIND_PASSWORD"]), value: password(&r), header: nil, host: "db.internal")
            it.fields.append(CorpusField(key: "DB_USER", val: .ident("username", user(&r)))); return it
        }),
        ("github-token-in-remote-url", { r in
            let tok = r.bool() ? crcToken(&r, prefix: "ghs_") : crcToken(&r, prefix: "ghp_")
            let fmt = tok.hasPrefix("ghs_") ? "github-app-installation-token" : "github-pat-classic"
            let d = CorpusDoc("https://x-access-token:") + CorpusDoc.secret(fmt, tok) + "@github.com/\(r.pick(["acme", "acme-internal", "platform-team"]))/\(r.pick(["api", "infra", "web", "charts"])).git"
            var it = CorpusItem(format: fmt, desc: "git remote URL", fields: [CorpusField(key: "GIT_REMOTE", val: d)], host: "github.com")
            it.isURL = true; return it
        }),
    ]

    static func dbURL(_ r: inout CorpusRNG, _ format: String, _ desc: String, scheme: String, port: Int?, key: String, path: String, noUser: Bool = false) -> CorpusItem {
        let u = user(&r)
        // One in four passwords has reserved characters, percent-encoded in the userinfo as RFC 3986 requires.
        let special = r.int(4) == 0
        let p = special ? password(&r) + r.pick(["@", "#", "/", ":", "?", "%", "!$"]) + r.alnum(3) : password(&r)
        let h = format == "basic-auth-url-password" ? "artifacts.corp.acme.io" : (scheme.hasSuffix("+srv") ? "cluster0.\(r.alnum(5).lowercased()).mongodb.net" : host(&r, scheme.hasPrefix("mongo") ? "mongo" : "db"))
        var d = CorpusDoc("\(scheme)://")
        if !noUser { d += CorpusDoc.ident("username", u) }
        d += ":"
        d += special ? CorpusDoc.secret(format, p).percent() : CorpusDoc.secret(format, p)
        d += "@\(h)" + (port.map { ":\($0)" } ?? "") + path
        var it = CorpusItem(format: format, desc: desc, fields: [CorpusField(key: key, val: d)], host: h)
        it.isURL = true
        return it
    }
}
