// Format-level credentials (private keys, JWTs, URIs with passwords, Authorization
// headers, generic assignments) and personal data.
extension BuiltinRules {
    static func structural() -> [Rule] {
        var r: [Rule] = []
        let pem: [(String, String, [String])] = [
            ("private-key-rsa", "RSA private key (PEM)", ["RSA PRIVATE KEY"]),
            ("private-key-ec", "EC private key (PEM)", ["EC PRIVATE KEY"]),
            ("private-key-dsa", "DSA private key (PEM)", ["DSA PRIVATE KEY"]),
            ("private-key-openssh", "OpenSSH private key", ["OPENSSH PRIVATE KEY", "SSH2 ENCRYPTED PRIVATE KEY"]),
            ("private-key-pkcs8", "PKCS#8 private key", ["PRIVATE KEY"]),
            ("private-key-pkcs8-encrypted", "Encrypted PKCS#8 private key", ["ENCRYPTED PRIVATE KEY"]),
            ("private-key-pgp", "PGP private key block", ["PGP PRIVATE KEY BLOCK"]),
        ]
        for (id, title, labels) in pem {
            r.append(RB.special(id, title, .critical, keywords: ["-----BEGIN ", "---- BEGIN "], .pemPrivateKey(labels: labels),
                                confidence: 0.98, priority: 95))
        }
        r.append(Rule(id: "jwt", title: "JSON Web Token", severity: .high, keywords: ["eyJ"],
                      matcher: .token((try? TokenPattern("eyJ[A-Za-z0-9_\\-]{8,}\\.eyJ[A-Za-z0-9_\\-]{8,}\\.[A-Za-z0-9_\\-]{16,}")) ?? TokenPattern.never,
                                      lead: .fixed(0)),
                      validator: .jwt, minEntropy: 3.0, confidence: 0.9, priority: 60,
                      rightBlock: ByteSet("A-Za-z0-9_\\-"), leftBlock: ByteSet("A-Za-z0-9_\\-")))
        let uris: [(String, String, [String])] = [
            ("uri-postgres-password", "PostgreSQL connection URI with password", ["postgres", "postgresql", "jdbc:postgresql", "pgsql", "postgis", "timescaledb"]),
            ("uri-mysql-password", "MySQL / MariaDB connection URI with password", ["mysql", "mariadb", "mysqlx", "jdbc:mysql", "mysql2", "jdbc:mariadb"]),
            ("uri-mongodb-password", "MongoDB connection URI with password", ["mongodb", "mongodb+srv", "mongo"]),
            ("uri-redis-password", "Redis connection URI with password", ["redis", "rediss", "valkey", "redis+sentinel"]),
            ("uri-amqp-password", "AMQP (RabbitMQ) URI with password", ["amqp", "amqps"]),
            ("uri-ldap-password", "LDAP URI with password", ["ldap", "ldaps"]),
            ("uri-ftp-password", "FTP / SFTP URI with password", ["ftp", "ftps", "sftp", "scp", "smb", "ssh"]),
            ("uri-smtp-password", "SMTP / IMAP URI with password", ["smtp", "smtps", "imap", "imaps", "pop3", "pop3s"]),
            ("uri-mssql-password", "SQL Server / Oracle URI with password", ["sqlserver", "mssql", "jdbc:sqlserver", "oracle", "jdbc:oracle", "db2"]),
            ("uri-database-password", "Database / broker URI with password", ["clickhouse", "cassandra", "couchdb", "neo4j", "bolt", "nats", "kafka", "mqtt", "mqtts", "cockroachdb", "snowflake", "elasticsearch", "influxdb", "memcached", "sqlalchemy", "postgresql+psycopg2", "mysql+pymysql", "tcp", "zookeeper"]),
            ("uri-http-basic-auth", "HTTP(S) URL with basic-auth password", ["http", "https", "ws", "wss", "git+https", "svn"]),
        ]
        for (id, title, schemes) in uris {
            r.append(RB.special(id, title, .critical, keywords: ["://"], .uriPassword(schemes: schemes), confidence: 0.9, priority: 70))
        }
        r.append(RB.special("curl-user-password", "curl -u user:password", .critical, keywords: ["-u ", "--user"], .curlUser,
                            confidence: 0.9, priority: 70))
        r.append(RB.special("authorization-bearer", "Authorization: Bearer token", .high, keywords: ["bearer"], .authHeader(scheme: "bearer"), confidence: 0.85, priority: 55))
        r.append(RB.special("authorization-basic", "Authorization: Basic credentials", .high, keywords: ["basic"], .authHeader(scheme: "basic"), confidence: 0.9, priority: 55))
        r.append(RB.special("authorization-token", "Authorization: token credentials", .high, keywords: ["authorization"], .authHeader(scheme: "token"), confidence: 0.85, priority: 55))
        r.append(RB.special("okta-ssws-token", "Okta SSWS API token", .critical, keywords: ["ssws"], .authHeader(scheme: "ssws"), confidence: 0.9, priority: 56))
        // Structured configuration (parsers, not patterns over the body): Docker `auths`, Bundler
        // gem-server credentials (Sidekiq Pro/Enterprise), Kubernetes `Secret` manifests.
        r.append(RB.special("docker-config-auth", "Docker config.json registry credentials (auth: base64 user:password)", .critical,
                            keywords: ["auth"], .dockerAuth, confidence: 0.9, priority: 72))
        r.append(RB.special("docker-config-identity-token", "Docker config.json registry identity token", .critical,
                            keywords: ["identitytoken", "registrytoken"], .dockerToken, confidence: 0.88, priority: 72))
        r.append(RB.special("sidekiq-license-credentials", "Sidekiq Pro / Enterprise gem server credentials", .high,
                            keywords: ["contribsys"], .bundlerCredential, confidence: 0.9, priority: 74))
        r.append(RB.special("kubernetes-secret-value", "Kubernetes Secret data / stringData value", .high,
                            keywords: ["secret"], .kubernetesSecret, confidence: 0.8, priority: 40))
        // Atlassian Data Center PATs have no prefix: checked on base64 runs of their exact shape.
        r.append(RB.special("atlassian-datacenter-pat", "Atlassian Data Center / Server personal access token (Jira, Confluence, Bitbucket)",
                            .critical, keywords: [], .atlassianDataCenterPAT, confidence: 0.9, priority: 76))
        let genericKeywords = ["pass", "pwd", "secret", "token", "key", "credential", "auth"]
        r.append(RB.special("generic-password", "Password assignment", .high, keywords: genericKeywords, .generic(.password), confidence: 0.7, priority: 30))
        r.append(RB.special("generic-secret", "Secret assignment", .high, keywords: genericKeywords, .generic(.secret), confidence: 0.7, priority: 30))
        r.append(RB.special("generic-token", "Token assignment", .high, keywords: genericKeywords, .generic(.token), confidence: 0.65, priority: 30))
        r.append(RB.special("generic-api-key", "API key assignment", .high, keywords: genericKeywords, .generic(.apiKey), confidence: 0.7, priority: 30))
        // Lowest priority: any specific rule that explains the same span wins.
        r.append(RB.special("prose-secret", "Secret handed over in prose (\"the token is …\")", .high,
                            keywords: ["pass", "secret", "token", "key", "credential"], .prose, confidence: 0.6, priority: 25))
        return r
    }

    static func pii() -> [Rule] {
        [
            RB.special("email", "Email address", .medium, cls: .pii, keywords: ["@"], .email, confidence: 0.9, priority: 20),
            RB.special("payment-card", "Payment card number (Luhn-valid)", .high, cls: .pii, keywords: [], .paymentCard, confidence: 0.9, priority: 25),
            RB.special("iban", "IBAN (mod-97 valid)", .high, cls: .pii, keywords: [], .iban, confidence: 0.95, priority: 25),
            RB.special("us-ssn", "US Social Security number", .high, cls: .pii, keywords: [], .ssn, confidence: 0.85, priority: 25),
            RB.special("phone-number", "Phone number", .medium, cls: .pii, keywords: [], .phone, confidence: 0.75, priority: 15),
        ]
    }
}
