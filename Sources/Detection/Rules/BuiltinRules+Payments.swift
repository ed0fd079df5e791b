// Payments and commerce: Stripe, Square, PayPal/Braintree, Shopify and others.
extension BuiltinRules {
    static func payments() throws(DetectionError) -> [Rule] {
        return [
            try RB.tok("stripe-secret-key", "Stripe live secret key", .critical, "sk_live_[A-Za-z0-9]{20,247}", entropy: 3.3, confidence: 0.97, priority: 85),
            try RB.tok("stripe-test-secret-key", "Stripe test secret key", .medium, "sk_test_[A-Za-z0-9]{20,247}", entropy: 3.3, confidence: 0.95, priority: 85),
            try RB.tok("stripe-restricted-key", "Stripe live restricted key", .critical, "rk_live_[A-Za-z0-9]{20,247}", entropy: 3.3, confidence: 0.97, priority: 85),
            try RB.tok("stripe-test-restricted-key", "Stripe test restricted key", .medium, "rk_test_[A-Za-z0-9]{20,247}", entropy: 3.3, priority: 85),
            try RB.tok("stripe-webhook-secret", "Stripe webhook signing secret", .high, "whsec_[A-Za-z0-9]{32,64}", entropy: 3.3),
            try RB.tok("square-access-token", "Square access token", .critical, "EAAA[A-Za-z0-9_\\-]{60}", entropy: 3.5),
            try RB.tok("square-access-token-legacy", "Square OAuth access token (legacy)", .critical, "sq0atp-[A-Za-z0-9_\\-]{22}", entropy: 3.3),
            try RB.tok("square-oauth-secret", "Square OAuth application secret", .critical, "sq0csp-[A-Za-z0-9_\\-]{43}", entropy: 3.3),
            try RB.tok("braintree-access-token", "PayPal Braintree production access token", .critical,
                       "access_token\\$production\\$[0-9a-z]{16}\\$[0-9a-f]{32}", entropy: 2.0),
            try RB.tok("braintree-sandbox-access-token", "PayPal Braintree sandbox access token", .medium,
                       "access_token\\$sandbox\\$[0-9a-z]{16}\\$[0-9a-f]{32}", entropy: 2.0),
            try RB.ctx("braintree-private-key", "Braintree private key", .critical, keywords: ["braintree"], value: "[a-f0-9]{32}", entropy: 3.2),
            try RB.ctx("paypal-client-secret", "PayPal REST client secret", .critical, keywords: ["paypal"], value: "E[A-Za-z0-9_\\-]{79}", entropy: 3.8),
            try RB.tok("shopify-access-token", "Shopify Admin API access token", .critical, "shpat_[a-fA-F0-9]{32}"),
            try RB.tok("shopify-custom-app-token", "Shopify custom app access token", .critical, "shpca_[a-fA-F0-9]{32}"),
            try RB.tok("shopify-private-app-token", "Shopify private app access token", .critical, "shppa_[a-fA-F0-9]{32}"),
            try RB.tok("shopify-shared-secret", "Shopify app shared secret", .critical, "shpss_[a-fA-F0-9]{32}"),
            try RB.tok("razorpay-key", "Razorpay live key id", .medium, "rzp_live_[A-Za-z0-9]{14}"),
            try RB.ctx("razorpay-secret", "Razorpay key secret", .critical, keywords: ["razorpay"], value: "[A-Za-z0-9]{24}", entropy: 3.5),
            try RB.tok("flutterwave-secret-key", "Flutterwave secret key", .critical, "FLWSECK-[a-f0-9]{32}-X", kw: ["FLWSECK-"]),
            try RB.tok("flutterwave-encryption-key", "Flutterwave encryption key", .high, "FLWSECK_TEST[a-f0-9]{12}"),
            try RB.ctx("adyen-api-key", "Adyen API key", .critical, keywords: ["adyen"], value: "AQE[A-Za-z0-9+/=_\\-.]{80,400}", entropy: 3.8),
            try RB.ctx("plaid-secret", "Plaid secret", .critical, keywords: ["plaid"], value: "[a-f0-9]{30}", entropy: 3.2),
            try RB.tok("plaid-access-token", "Plaid access token", .high, "access-[a-z]{7,11}-\(RB.uuid)",
                       kw: ["access-production-", "access-development-", "access-sandbox-"]),
            try RB.ctx("gocardless-token", "GoCardless access token", .critical, keywords: ["gocardless"], value: "live_[A-Za-z0-9_=\\-]{40}", entropy: 3.5),
            try RB.tok("coinbase-api-secret", "Coinbase CDP API private key name", .high, "organizations/\(RB.uuid)/apiKeys/\(RB.uuid)",
                       kw: ["organizations/"], entropy: 2.5, left: ByteSet()),
            try RB.tok("shippo-token", "Shippo API token", .high, "shippo_[a-z]{4}_[a-f0-9]{40}", kw: ["shippo_live_", "shippo_test_"]),
            try RB.tok("easypost-api-key", "EasyPost API key", .high, "EZ[AT]K[A-Za-z0-9]{54}", kw: ["EZAK", "EZTK"]),
            try RB.tok("duffel-token", "Duffel API token", .high, "duffel_[a-z]{4}_[A-Za-z0-9_=\\-]{43}", kw: ["duffel_live_", "duffel_test_"]),
        ]
    }
}
