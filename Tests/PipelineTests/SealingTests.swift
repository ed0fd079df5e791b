import Foundation
import Pipeline
import Testing

@Suite("Payload sealing")
struct SealingTests {
    let k1 = try! PayloadSealer.Key(id: "k1", bytes: Array(repeating: 1, count: 32))
    let k2 = try! PayloadSealer.Key(id: "k2", bytes: Array(repeating: 2, count: 32))
    let body = Array("{\"password\":\"hunter2-very-secret\"}".utf8)

    @Test func roundTrip() throws {
        let sealer = try PayloadSealer(keys: [k1, k2])
        let (sealed, header) = try sealer.seal(body, associatedData: "req-1")
        #expect(header == BusHeader("sluice-key-id", "k1"))
        #expect(sealed.count == body.count + 28)
        #expect(!String(decoding: sealed, as: UTF8.self).contains("hunter2"))
        #expect(try sealer.open(sealed, keyID: "k1", associatedData: "req-1") == body)
    }

    @Test func olderKeyInRingStillOpens() throws {
        let old = try PayloadSealer(keys: [k2])
        let (sealed, _) = try old.seal(body, associatedData: "r")
        let rotated = try PayloadSealer(keys: [k1, k2])
        #expect(try rotated.open(sealed, keyID: "k2", associatedData: "r") == body)
    }

    @Test func wrongKeyFails() throws {
        let (sealed, _) = try PayloadSealer(keys: [k1]).seal(body, associatedData: "r")
        let impostor = try PayloadSealer(keys: [PayloadSealer.Key(id: "k1", bytes: Array(repeating: 9, count: 32))])
        #expect(throws: SealingError.authenticationFailed(keyID: "k1")) { try impostor.open(sealed, keyID: "k1", associatedData: "r") }
    }

    @Test func unknownKeyIDFails() throws {
        let sealer = try PayloadSealer(keys: [k1])
        let (sealed, _) = try sealer.seal(body, associatedData: "r")
        #expect(throws: SealingError.unknownKeyID("k7")) { try sealer.open(sealed, keyID: "k7", associatedData: "r") }
    }

    @Test func everyFlippedBitFails() throws {
        let sealer = try PayloadSealer(keys: [k1])
        let (sealed, _) = try sealer.seal(body, associatedData: "r")
        for i in stride(from: 0, to: sealed.count, by: 1) {
            var tampered = sealed
            tampered[i] ^= 0x01
            #expect(throws: SealingError.self) { try sealer.open(tampered, keyID: "k1", associatedData: "r") }
        }
        #expect(throws: SealingError.self) { try sealer.open(Array(sealed.dropLast()), keyID: "k1", associatedData: "r") }
    }

    @Test func wrongAssociatedDataFails() throws {
        let sealer = try PayloadSealer(keys: [k1])
        let (sealed, _) = try sealer.seal(body, associatedData: "req-1")
        #expect(throws: SealingError.self) { try sealer.open(sealed, keyID: "k1", associatedData: "req-2") }
    }

    @Test func keysMustBe32BytesOfBase64() {
        #expect(throws: SealingError.self) { try PayloadSealer.Key(id: "k", bytes: [1, 2, 3]) }
        #expect(throws: SealingError.self) { try PayloadSealer.Key(id: "k", base64: "not base64!") }
        #expect(throws: SealingError.self) { try PayloadSealer(keys: []) }
        #expect(throws: SealingError.self) { try PayloadSealer(keys: [k1, k1]) }
        let b64 = Data(repeating: 7, count: 32).base64EncodedString()
        #expect((try? PayloadSealer.Key(id: "k", base64: b64)) != nil)
    }

    @Test func errorsNeverCarryKeyMaterial() throws {
        let sealer = try PayloadSealer(keys: [k1])
        do {
            _ = try sealer.open(Array(repeating: 0, count: 40), keyID: "k1", associatedData: "r")
            Issue.record("opened garbage")
        } catch {
            #expect(!"\(error)".contains("\u{01}"))
        }
    }
}

@Suite("Secret references")
struct SecretReferenceTests {
    @Test func environmentAndFile() throws {
        let env = ["SLUICE_T": "abc"]
        #expect(try SecretReference(parsing: "env:SLUICE_T").resolve(environment: env) == "abc")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(UUID().uuidString)").path
        try "from-file\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try SecretReference(parsing: "file:\(path)").resolve() == "from-file")
    }

    @Test func literalsAndMissingAreErrorsNamingTheReference() throws {
        #expect(throws: SecretReferenceError.self) { try SecretReference(parsing: "hunter2") }
        do {
            _ = try SecretReference(parsing: "env:SLUICE_DOES_NOT_EXIST").resolve(environment: [:])
            Issue.record("resolved a missing variable")
        } catch {
            #expect("\(error)".contains("SLUICE_DOES_NOT_EXIST"))
        }
        #expect(throws: SecretReferenceError.self) { try SecretReference(parsing: "file:/nonexistent/x").resolve() }
    }
}
