import Foundation

// Whole non-secret documents that are full of secret-looking strings: lockfiles, minified bundles,
// images, manifests, CI logs, API docs with example keys, public key material.

struct NegativeDocument {
    var name: String
    var make: (inout HoldoutRng) -> String
}

enum HoldoutDocuments {
    static func all() -> [NegativeDocument] {
        var d: [NegativeDocument] = []
        func add(_ name: String, _ make: @escaping (inout HoldoutRng) -> String) { d.append(NegativeDocument(name: name, make: make)) }

        add("package-lock-json") { r in
            var s = "{\n  \"name\": \"web\",\n  \"version\": \"\(r.int(1...3)).\(r.int(0...20)).0\",\n  \"lockfileVersion\": 3,\n  \"packages\": {\n"
            let names = ["react", "lodash", "axios", "tslib", "zod", "undici", "semver", "chalk", "debug", "ms"]
            for (i, n) in names.holdoutShuffled(&r).prefix(r.int(3...7)).enumerated() {
                s += (i > 0 ? ",\n" : "") + "    \"node_modules/\(n)\": {\n      \"version\": \"\(r.int(1...18)).\(r.int(0...30)).\(r.int(0...9))\",\n      \"resolved\": \"https://npm.corp.example/\(n)/-/\(n).tgz\",\n      \"integrity\": \"sha512-\(Enc.b64(r.bytes(64)))\",\n      \"license\": \"MIT\"\n    }"
            }
            return s + "\n  }\n}\n"
        }
        add("minified-js") { r in
            var s = "!function(e,t){\"object\"==typeof exports&&\"undefined\"!=typeof module?module.exports=t():\"function\"==typeof define&&define.amd?define(t):(e=e||self).lib=t()}(this,function(){\"use strict\";"
            s += "var n=\"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\",r={};"
            for _ in 0..<r.int(4...10) {
                let v = r.chars(1, Alpha.lower) + r.chars(r.int(0...2), Alpha.base62)
                s += "function \(v)(\(r.chars(1, Alpha.lower)),\(r.chars(1, Alpha.lower))){return \"\(r.alnum(r.int(16...40)))\"===t?e[\"\(r.hex(8))\"]:o.call(this,\(r.int(0...9999)))}"
            }
            s += "var __webpack_hash__=\"\(r.hex(20))\",chunkIds={\(r.int(100...999)):\"\(r.hex(20))\",\(r.int(100...999)):\"\(r.hex(20))\"};"
            s += "return{encode:function(t){return btoa(t)},version:\"\(r.int(1...5)).\(r.int(0...9)).\(r.int(0...9))\"}});\n//# sourceMappingURL=main.\(r.hex(8)).js.map\n"
            return s
        }
        add("sourcemap") { r in
            var m = ""
            for _ in 0..<r.int(20...60) { m += r.chars(r.int(4...8), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") + r.pick([",", ";", ";;"]) }
            return "{\"version\":3,\"file\":\"main.\(r.hex(8)).js\",\"sources\":[\"webpack://app/./src/index.ts\"],\"names\":[\"init\",\"render\"],\"mappings\":\"\(m)AAAA\"}\n"
        }
        add("html-base64-image") { r in
            "<!doctype html><html><head><link rel=\"icon\" href=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAA\(Enc.b64(r.bytes(r.int(200...700))))\"></head><body><img alt=\"logo\" src=\"data:image/webp;base64,UklGR\(Enc.b64(r.bytes(r.int(200...500))))\"></body></html>\n"
        }
        add("k8s-configmap") { r in
            """
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: \(r.pick(["web-config", "worker-settings"]))
              annotations:
                checksum/config: \(r.hex(64))
                deployment.kubernetes.io/revision: "\(r.int(1...90))"
            data:
              LOG_LEVEL: info
              API_BASE_URL: https://api.internal.example
              BUILD_SHA: \(r.hex(40))
              TRACE_SAMPLE_RATE: "0.\(r.int(1...9))"
              TOKEN_TTL_SECONDS: "3600"
              PASSWORD_MIN_LENGTH: "12"
              SECRET_NAME: app-secrets
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: web
            spec:
              template:
                metadata:
                  annotations:
                    kubectl.kubernetes.io/restartedAt: "2026-11-2\(r.int(0...9))T10:00:00Z"
                spec:
                  containers:
                    - name: web
                      image: registry.corp.example/web@sha256:\(r.hex(64))
                      env:
                        - name: DB_PASSWORD
                          valueFrom:
                            secretKeyRef:
                              name: db-credentials
                              key: password
                        - name: API_KEY
                          valueFrom:
                            secretKeyRef: {name: api-keys, key: primary}

            """
        }
        add("go-sum") { r in
            var s = ""
            for n in ["github.com/google/uuid v1.6.0", "github.com/acme/crypto-utils v0.\(r.int(20...40)).0", "github.com/stretchr/testify v1.9.0", "github.com/acme/logging v1.27.0"] {
                s += "\(n) h1:\(Enc.b64(r.bytes(32)))\n\(n)/go.mod h1:\(Enc.b64(r.bytes(32)))\n"
            }
            return s
        }
        add("ci-log") { r in
            """
            2026-11-29T10:0\(r.int(0...9)):12.1Z ##[group]Run actions/checkout@\(r.hex(40))
            2026-11-29T10:0\(r.int(0...9)):13.4Z HEAD is now at \(r.hex(7)) Merge pull request #\(r.int(100...9999)) from acme/feature/token-refresh
            2026-11-29T10:0\(r.int(0...9)):20.0Z Successfully built \(r.hex(12))
            2026-11-29T10:0\(r.int(0...9)):21.7Z latest: digest: sha256:\(r.hex(64)) size: \(r.int(500...4000))
            2026-11-29T10:0\(r.int(0...9)):22.0Z GITHUB_TOKEN Permissions: contents read, packages write
            2026-11-29T10:0\(r.int(0...9)):22.3Z Secret source: Actions; Prepare workflow directory; run id \(r.digits(10)), attempt 1
            2026-11-29T10:0\(r.int(0...9)):23.9Z cache key: node-modules-\(r.hex(64))
            2026-11-29T10:0\(r.int(0...9)):24.1Z env: API_TOKEN=*** DB_PASSWORD=*** REQUEST_ID=\(uuid4(&r))

            """
        }
        add("api-docs-examples") { r in
            """
            ## Authentication

            Pass your key in the `Authorization` header: `Authorization: Bearer <your-api-key>`.
            Keys look like `sk_live_xxxxxxxxxxxxxxxxxxxxxxxx`; for testing, use a key starting with `sk_test_`.

            ```bash
            export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE
            export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
            curl -H "Authorization: token ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX" https://api.example.com/user
            curl -u "$USERNAME:$APP_PASSWORD" https://api.example.com/2.0/repositories
            ```

            GitHub tokens start with `ghp_`, Slack bot tokens with `xoxb-`, and GitLab tokens with `glpat-`.
            The request id (for support) is returned as `X-Request-Id: \(uuid4(&r))`.

            """
        }
        add("chat-completion-response") { r in
            "{\"id\":\"chatcmpl-\(r.alnum(29))\",\"object\":\"chat.completion\",\"created\":\(1_790_000_000 + r.int(9_999_999)),\"model\":\"gpt-4o-2024-08-06\",\"system_fingerprint\":\"fp_\(r.hex(10))\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"The deployment \(r.hex(12)) finished; commit \(r.hex(40)) is live. Use ${{ secrets.DEPLOY_TOKEN }} in the workflow rather than pasting the token.\"},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":\(r.int(10...900)),\"completion_tokens\":\(r.int(10...400)),\"total_tokens\":\(r.int(900...1400))}}"
        }
        add("jwks-public-keys") { r in
            "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"\(r.hex(40))\",\"alg\":\"RS256\",\"n\":\"\(Enc.b64url(r.bytes(256)))\",\"e\":\"AQAB\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"\(r.chars(43, Alpha.base64url))\",\"x\":\"\(Enc.b64url(r.bytes(32)))\",\"y\":\"\(Enc.b64url(r.bytes(32)))\"}]}"
        }
        add("public-certificate-pem") { r in
            var body = Enc.b64(r.bytes(900))
            var lines: [String] = []
            while !body.isEmpty { lines.append(String(body.prefix(64))); body = String(body.dropFirst(64)) }
            let cert = "-----BEGIN CERTIFICATE-----\nMIID" + lines.joined(separator: "\n") + "\n-----END CERTIFICATE-----\n"
            return r.chance(0.5) ? cert : "ca.crt: |\n  " + cert.replacingOccurrences(of: "\n", with: "\n  ") + "\n"
        }
        add("github-workflow-refs-only") { r in
            """
            name: release
            on: [push]
            permissions:
              id-token: write
            jobs:
              publish:
                runs-on: ubuntu-latest
                steps:
                  - uses: actions/checkout@\(r.hex(40))
                  - uses: actions/setup-node@\(r.hex(40))
                  - run: npm publish
                    env:
                      NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}
                      GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}
                      SONAR_TOKEN: ${{ secrets.SONAR_TOKEN }}
                  - uses: aws-actions/configure-aws-credentials@\(r.hex(40))
                    with:
                      role-to-assume: arn:aws:iam::\(r.digits(12)):role/gha-release
                      aws-region: us-east-1

            """
        }
        add("docker-config-helpers") { r in
            "{\n  \"auths\": {\n    \"registry.corp.example\": {}\n  },\n  \"credsStore\": \"desktop\",\n  \"credHelpers\": {\n    \"cr.internal.example\": \"ecr-login\"\n  },\n  \"currentContext\": \"default\"\n}\n"
        }
        add("env-example") { r in
            """
            # Copy to .env and fill in
            DATABASE_URL=postgres://user:password@localhost:5432/app_dev
            REDIS_URL=redis://localhost:6379/0
            STRIPE_SECRET_KEY=sk_test_your_key_here
            STRIPE_PUBLISHABLE_KEY=pk_live_51\(r.alnum(97))
            GITHUB_TOKEN=
            OPENAI_API_KEY=<your-openai-key>
            SENTRY_DSN=https://\(r.hex(32))@o\(r.digits(6)).ingest.sentry.io/\(r.digits(7))
            SESSION_SECRET=changeme

            """
        }
        add("terraform-plan") { r in
            """
              # aws_instance.web will be updated in-place
              ~ resource "aws_instance" "web" {
                    id                     = "i-0\(r.hex(16))"
                  ~ ami                    = "ami-0\(r.hex(16))" -> "ami-0\(r.hex(16))"
                    vpc_security_group_ids = ["sg-0\(r.hex(16))"]
                    user_data_base64       = "\(Enc.b64("#!/bin/bash\nyum install -y nginx\nsystemctl enable nginx\n"))"
                }
              # random_password.db will be created
              + resource "random_password" "db" {
                  + result = (sensitive value)
                  + length = 32
                }
            Plan: 1 to add, 1 to change, 0 to destroy. Lineage \(uuid4(&r)), serial \(r.int(1...400)).

            """
        }
        add("notebook-with-image-output") { r in
            "{\"cells\":[{\"cell_type\":\"code\",\"execution_count\":3,\"metadata\":{},\"outputs\":[{\"data\":{\"image/png\":\"iVBORw0KGgoAAAANSUhEUgAA\(Enc.b64(r.bytes(r.int(300...900))))\",\"text/plain\":[\"<Figure size 640x480 with 1 Axes>\"]},\"metadata\":{},\"output_type\":\"display_data\"}],\"source\":[\"df.plot(x=\\\"date\\\", y=\\\"revenue\\\")\"]}],\"metadata\":{},\"nbformat\":4,\"nbformat_minor\":5}"
        }
        add("tool-result-listing") { r in
            var s = "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01\(r.alnum(22))\",\"content\":\""
            var body = ""
            for _ in 0..<r.int(4...9) {
                body += "\(r.hex(7)) \(r.pick(["fix: retry token refresh", "chore(deps): bump axios", "feat: rotate signing keys", "docs: explain API_KEY env"])) (\(r.pick(["alice", "bob", "dependabot[bot]"])))\n"
            }
            s += Enc.json(body) + "\",\"is_error\":false}"
            return s
        }
        add("firebase-web-config") { r in
            // Public by design: shipped to every browser that loads the app.
            let project = r.pick(["acme-web", "shop-prod", "notes-app"]) + "-" + r.chars(5, Alpha.lowerDigits)
            return """
            import { initializeApp } from "firebase/app";

            const firebaseConfig = {
              apiKey: "AIza\(r.chars(35, Alpha.base62 + "-_"))",
              authDomain: "\(project).firebaseapp.com",
              projectId: "\(project)",
              storageBucket: "\(project).appspot.com",
              messagingSenderId: "\(r.digits(12))",
              appId: "1:\(r.digits(12)):web:\(r.hex(22))",
              measurementId: "G-\(r.chars(10, Alpha.upperDigits))"
            };

            export const app = initializeApp(firebaseConfig);

            """
        }
        add("ssh-known-hosts") { r in
            "git.corp.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\(r.chars(43, Alpha.base64))\n10.0.\(r.int(0...9)).\(r.int(1...250)) ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB\(Enc.b64(r.bytes(64)))\n# fingerprint SHA256:\(r.chars(43, Alpha.base64))\n"
        }
        return d
    }
}

extension Array {
    func holdoutShuffled(_ r: inout HoldoutRng) -> [Element] {
        var a = self
        guard a.count > 1 else { return a }
        for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, r.int(i + 1)) }
        return a
    }
}
