import Foundation
import GatewayHarness
import Testing

/// `make install`'s script on the built binary: the man pages and the shell completions are
/// generated from the argument parser, so they list exactly the binary's commands and flags.
@Suite("make install: binary, man pages, completions")
struct InstallTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test("scripts/install.sh puts the binary, a man page per command and bash/zsh/fish completions under the prefix")
    func installs() throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-install-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: prefix) }
        let r = try runToCompletion(
            URL(fileURLWithPath: "/bin/bash"), [Self.root.appendingPathComponent("scripts/install.sh").path, SluiceProcess.binary.path, prefix.path])
        try #require(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let fm = FileManager.default
        #expect(fm.isExecutableFile(atPath: prefix.appendingPathComponent("bin/sluice").path))
        let version = try runToCompletion(prefix.appendingPathComponent("bin/sluice"), ["version"])
        #expect(version.status == 0 && version.stdout.contains("sluice"), "\(version.stdout)\(version.stderr)")

        let man = prefix.appendingPathComponent("share/man/man1")
        let pages = try fm.contentsOfDirectory(atPath: man.path)
        for page in ["sluice.1", "sluice.scan.1", "sluice.run.1", "sluice.config.check.1", "sluice.approvals.list.1"] {
            #expect(pages.contains(page), "\(pages.sorted())")
        }
        let scanPage = try String(contentsOf: man.appendingPathComponent("sluice.scan.1"), encoding: .utf8)
        #expect(scanPage.contains("--baseline") && scanPage.contains("--exclude") && scanPage.contains(".Dt"), "\(scanPage.prefix(400))")

        let bash = try String(contentsOf: prefix.appendingPathComponent("share/bash-completion/completions/sluice"), encoding: .utf8)
        for word in ["scan", "approvals", "config", "replay", "--format"] { #expect(bash.contains(word), "bash completion lacks \(word)") }
        let syntax = try runToCompletion(URL(fileURLWithPath: "/bin/bash"), ["-n", prefix.appendingPathComponent("share/bash-completion/completions/sluice").path])
        #expect(syntax.status == 0, "\(syntax.stderr)")
        #expect(try String(contentsOf: prefix.appendingPathComponent("share/zsh/site-functions/_sluice"), encoding: .utf8).hasPrefix("#compdef sluice"))
        let fish = try String(contentsOf: prefix.appendingPathComponent("share/fish/vendor_completions.d/sluice.fish"), encoding: .utf8)
        #expect(fish.contains("complete -c 'sluice'") && fish.contains("scan"), "\(fish.prefix(300))")
    }

    @Test("a missing binary or generate-manual stops the script with a message, installing nothing")
    func refusesIncomplete() throws {
        let prefix = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-install-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: prefix) }
        let script = Self.root.appendingPathComponent("scripts/install.sh").path
        let noBinary = try runToCompletion(URL(fileURLWithPath: "/bin/bash"), [script, "/nonexistent/sluice", prefix.path])
        #expect(noBinary.status == 1 && noBinary.stderr.contains("is not an executable"), "\(noBinary.stderr)")
        let noManual = try runToCompletion(
            URL(fileURLWithPath: "/bin/bash"), [script, SluiceProcess.binary.path, prefix.path], environment: ["GENERATE_MANUAL": "/nonexistent/generate-manual"])
        #expect(noManual.status == 1 && noManual.stderr.contains("generate-manual"), "\(noManual.stderr)")
        #expect(!FileManager.default.fileExists(atPath: prefix.path), "nothing is installed")
    }
}
