// AI and ML platforms.
extension BuiltinRules {
    static func ai() throws(DetectionError) -> [Rule] {
        return [
            try RB.tok("openai-project-key", "OpenAI project API key", .critical, "sk-proj-[A-Za-z0-9_\\-]{40,300}", entropy: 3.5, confidence: 0.97, priority: 85),
            try RB.tok("openai-service-account-key", "OpenAI service account key", .critical, "sk-svcacct-[A-Za-z0-9_\\-]{40,300}", entropy: 3.5, confidence: 0.97, priority: 85),
            try RB.tok("openai-admin-key", "OpenAI admin key", .critical, "sk-admin-[A-Za-z0-9_\\-]{40,300}", entropy: 3.5, confidence: 0.97, priority: 85),
            try RB.tok("openai-api-key", "OpenAI API key (user)", .critical, "sk-[A-Za-z0-9]{48}", entropy: 3.5, confidence: 0.93, priority: 84),
            try RB.tok("anthropic-api-key", "Anthropic API key", .critical, "sk-ant-api0[0-9]-[A-Za-z0-9_\\-]{80,120}", entropy: 3.5, confidence: 0.98, priority: 86),
            try RB.tok("anthropic-admin-key", "Anthropic admin key", .critical, "sk-ant-admin0[0-9]-[A-Za-z0-9_\\-]{80,120}", entropy: 3.5, confidence: 0.98, priority: 86),
            try RB.tok("anthropic-session-key", "Anthropic session key", .critical, "sk-ant-sid0[0-9]-[A-Za-z0-9_\\-]{80,120}", entropy: 3.5, priority: 86),
            try RB.tok("anthropic-oauth-token", "Anthropic OAuth token", .critical, "sk-ant-o[a-z]t0[0-9]-[A-Za-z0-9_\\-]{80,120}", kw: ["sk-ant-o"], entropy: 3.5, priority: 86),
            try RB.tok("huggingface-token", "Hugging Face access token", .critical, "hf_[A-Za-z]{34}", entropy: 3.5),
            try RB.tok("huggingface-org-token", "Hugging Face organization API token", .critical, "api_org_[A-Za-z]{34}", entropy: 3.5),
            try RB.ctx("cohere-api-key", "Cohere API key", .critical, keywords: ["cohere", "co_api_key"], value: "[A-Za-z0-9]{40}", entropy: 3.5),
            try RB.tok("replicate-api-token", "Replicate API token", .critical, "r8_[A-Za-z0-9]{37}", entropy: 3.5),
            try RB.tok("groq-api-key", "Groq API key", .critical, "gsk_[A-Za-z0-9]{52}", entropy: 3.5),
            try RB.ctx("mistral-api-key", "Mistral AI API key", .critical, keywords: ["mistral"], value: "[A-Za-z0-9]{32}", entropy: 3.5),
            try RB.tok("perplexity-api-key", "Perplexity API key", .critical, "pplx-[A-Za-z0-9]{40,64}", entropy: 3.5),
            try RB.tok("xai-api-key", "xAI API key", .critical, "xai-[A-Za-z0-9]{70,90}", entropy: 3.5),
            try RB.tok("langsmith-api-key", "LangSmith API key", .high, "lsv2_[a-z]{2}_[a-f0-9]{32}_[a-f0-9]{10}"),
            try RB.tok("openrouter-api-key", "OpenRouter API key", .critical, "sk-or-v1-[a-f0-9]{64}"),
            try RB.tok("pinecone-api-key", "Pinecone API key", .high, "pcsk_[A-Za-z0-9_]{50,120}", entropy: 3.5),
            try RB.ctx("elevenlabs-api-key", "ElevenLabs API key", .high, keywords: ["elevenlabs", "xi-api-key", "xi_api_key"], value: "[a-z0-9_]{32,51}", entropy: 3.3),
            try RB.ctx("together-api-key", "Together AI API key", .high, keywords: ["together"], value: "[a-f0-9]{64}", entropy: 3.3),
            try RB.ctx("deepseek-api-key", "DeepSeek API key", .high, keywords: ["deepseek"], value: "sk-[a-f0-9]{32}", entropy: 3.2),
            try RB.ctx("assemblyai-api-key", "AssemblyAI API key", .high, keywords: ["assemblyai", "assembly_ai"], value: "[a-f0-9]{32}", entropy: 3.2),
            try RB.ctx("deepgram-api-key", "Deepgram API key", .high, keywords: ["deepgram"], value: "[a-f0-9]{40}", entropy: 3.3),
            try RB.tok("fireworks-api-key", "Fireworks AI API key", .high, "fw_[A-Za-z0-9]{24,48}", entropy: 3.5),
            try RB.ctx("weights-and-biases-key", "Weights & Biases API key", .high, keywords: ["wandb"], value: "[a-f0-9]{40}", entropy: 3.3),
        ]
    }
}
