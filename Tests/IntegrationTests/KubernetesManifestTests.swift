import Foundation
import GatewayHarness
import Testing

/// deploy/kubernetes: every Deployment runs an existing subcommand with flags it has, on the
/// ConfigMap made from sluice.yaml, which passes `sluice config check --stage` with the
/// variables the pod gets from its Secrets; grace periods exceed shutdown_timeout; every stage's
/// probes are on admin_listen; KEDA's trigger names the inspector
/// group's topic and never scales past the partitions.
@Suite("deploy/kubernetes")
struct KubernetesManifestTests {
    static let dir = ComposeFileTests.root.appendingPathComponent("deploy/kubernetes")

    /// Every document of the kustomization's resources, as JSON objects (PyYAML, with docker-compose).
    static func documents() throws -> [[String: Any]] {
        let kustomization = dir.appendingPathComponent("kustomization.yaml").path
        let script = """
            import json, os, sys, yaml
            k = yaml.safe_load(open(sys.argv[1]))
            base = os.path.dirname(sys.argv[1])
            docs = [d for r in k["resources"] for d in yaml.safe_load_all(open(os.path.join(base, r))) if d]
            json.dump({"kustomization": k, "documents": docs}, sys.stdout)
            """
        let out = try runToCompletion(try ComposeFileTests.tool("python3"), ["-c", script, kustomization])
        try #require(out.status == 0, "\(out.stderr)")
        let top = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any])
        let kustom = try #require(top["kustomization"] as? [String: Any])
        let generated = try #require((kustom["configMapGenerator"] as? [[String: Any]])?.first)
        #expect(generated["name"] as? String == "sluice-config" && (generated["files"] as? [String]) == ["sluice.yaml"])
        return try #require(top["documents"] as? [[String: Any]])
    }

    static func value(_ object: Any?, _ path: String...) -> Any? {
        path.reduce(object) { ($0 as? [String: Any])?[$1] }
    }

    @Test func deploymentsRunExistingCommandsOnAValidConfiguration() throws {
        let docs = try Self.documents()
        let config = Self.dir.appendingPathComponent("sluice.yaml").path
        let deployments = docs.filter { ["Deployment", "StatefulSet"].contains($0["kind"] as? String) }
        #expect(deployments.count == 4)
        for deployment in deployments {
            // Every pod's SLUICE_INSTANCE_ID is its name: numbered pods for the Ingress (its
            // replies partition follows the number), governed by a headless Service.
            let env = (Self.value(deployment, "spec", "template", "spec") as? [String: Any]).flatMap {
                ($0["containers"] as? [[String: Any]])?.first?["env"] as? [[String: Any]]
            } ?? []
            let instance = env.first { $0["name"] as? String == "SLUICE_INSTANCE_ID" }
            #expect(Self.value(instance, "valueFrom", "fieldRef", "fieldPath") as? String == "metadata.name")
            if deployment["kind"] as? String == "StatefulSet" {
                #expect(Self.value(deployment, "metadata", "name") as? String == "sluice-ingress")
                let governing = try #require(Self.value(deployment, "spec", "serviceName") as? String)
                let service = docs.first { $0["kind"] as? String == "Service" && Self.value($0, "metadata", "name") as? String == governing }
                #expect(Self.value(service, "spec", "clusterIP") as? String == "None", "\(governing) must be headless")
            }
            let name = Self.value(deployment, "metadata", "name") as? String ?? "?"
            let pod = try #require(Self.value(deployment, "spec", "template", "spec") as? [String: Any])
            let container = try #require((pod["containers"] as? [[String: Any]])?.first)
            let args = try #require(container["args"] as? [String])
            let subcommand = try #require(args.first)
            let help = try runToCompletion(SluiceProcess.binary, [subcommand, "--help"])
            #expect(help.status == 0, "\(name): `sluice \(subcommand)` is not a subcommand")
            for flag in args.dropFirst() where flag.hasPrefix("-") { #expect(help.stdout.contains(flag), "\(name): no flag \(flag)") }
            #expect(args.contains("/etc/sluice/sluice.yaml"), "\(name): \(args)")
            let mounts = container["volumeMounts"] as? [[String: Any]] ?? []
            let configVolume = try #require(mounts.first { $0["mountPath"] as? String == "/etc/sluice" }?["name"] as? String)
            let volumes = pod["volumes"] as? [[String: Any]] ?? []
            #expect(Self.value(volumes.first { $0["name"] as? String == configVolume }, "configMap", "name") as? String == "sluice-config")
            #expect(mounts.contains { $0["mountPath"] as? String == "/var/lib/sluice" }, "\(name): data_dir is not a volume")
            #expect(Self.value(container, "securityContext", "readOnlyRootFilesystem") as? Bool == true)
            // The pod's environment: each Secret reference gets a test value, and nothing else.
            var environment = ComposeFileTests.envValues.mapValues { _ in "" }
            for variable in container["env"] as? [[String: Any]] ?? [] where Self.value(variable, "valueFrom", "secretKeyRef") != nil {
                let key = try #require(variable["name"] as? String)
                environment[key] = ComposeFileTests.envValues[key] ?? "value-of-\(key)"
            }
            let check = try runToCompletion(
                SluiceProcess.binary, ["config", "check", "--config", config, "--stage", subcommand], environment: environment)
            #expect(check.status == 0, "\(name): \(check.stderr)")
            // Grace above shutdown_timeout (10s in sluice.yaml) + the 1 s the stages' drain adds.
            let grace = try #require(pod["terminationGracePeriodSeconds"] as? Int)
            #expect(check.stdout.contains("shutdown_timeout: \"10s\"") && grace > 11, "\(name): grace \(grace)")
            // Every stage serves admin_listen (issue 12, item 4): both probes on its port.
            let probes = ["readinessProbe", "livenessProbe"].compactMap { container[$0] as? [String: Any] }
            #expect(probes.count == 2, "\(name)")
            #expect(probes.map { Self.value($0, "httpGet", "path") as? String } == ["/readyz", "/healthz"], "\(name)")
            #expect(probes.allSatisfy { Self.value($0, "httpGet", "port") as? String == "admin" }, "\(name)")
            let ports = container["ports"] as? [[String: Any]] ?? []
            #expect(ports.contains { $0["name"] as? String == "admin" && $0["containerPort"] as? Int == 9090 }, "\(name)")
            #expect(check.stdout.contains("admin_listen: \"0.0.0.0:9090\""))
        }
    }

    @Test func kedaScalesInspectorsOnTheirGroupsLagWithinThePartitions() throws {
        let docs = try Self.documents()
        let scaled = try #require(docs.first { $0["kind"] as? String == "ScaledObject" })
        #expect(Self.value(scaled, "spec", "scaleTargetRef", "name") as? String == "sluice-inspector")
        let trigger = try #require((Self.value(scaled, "spec", "triggers") as? [[String: Any]])?.first)
        let metadata = try #require(trigger["metadata"] as? [String: Any])
        let yaml = try String(contentsOf: Self.dir.appendingPathComponent("sluice.yaml"), encoding: .utf8)
        let prefix = try #require(yaml.firstMatch(of: /topic_prefix: "([^"]+)"/)?.1)
        let partitions = try #require(yaml.firstMatch(of: /partitions: (\d+)/).flatMap { Int($0.1) })
        let brokers = try #require(yaml.firstMatch(of: /brokers: "([^"]+)"/)?.1)
        #expect(trigger["type"] as? String == "kafka")
        #expect(metadata["consumerGroup"] as? String == "\(prefix)inspector")
        #expect(metadata["topic"] as? String == "\(prefix)requests")
        #expect(metadata["bootstrapServers"] as? String == String(brokers))
        #expect(metadata["allowIdleConsumers"] as? String == "false")
        let maxReplicas = try #require(Self.value(scaled, "spec", "maxReplicaCount") as? Int)
        #expect(maxReplicas <= partitions, "more inspectors than partitions would idle")
    }
}
