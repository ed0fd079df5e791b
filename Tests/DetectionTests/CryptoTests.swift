import Testing
@testable import Detection

@Suite struct CryptoTests {
    func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var it = s.utf8.makeIterator()
        while let a = it.next(), let b = it.next() {
            out.append(UInt8(PercentDecoder.hexVal(a) * 16 + PercentDecoder.hexVal(b)))
        }
        return out
    }

    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func sha256FIPS(input: String, expected: String) {
        #expect(Hex.encode(SHA256.hash(Array(input.utf8))) == expected)
    }

    @Test func sha256MillionA() {
        var h = SHA256()
        let chunk = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { h.update(chunk) }
        #expect(Hex.encode(h.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    // RFC 4231 test cases 1, 2, 3, 4, 6, 7 (HMAC-SHA-256).
    @Test func hmacRFC4231() {
        let cases: [([UInt8], [UInt8], String)] = [
            ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (hex("0102030405060708090a0b0c0d0e0f10111213141516171819"), [UInt8](repeating: 0xcd, count: 50),
             "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            ([UInt8](repeating: 0xaa, count: 131),
             Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ]
        for (key, msg, expected) in cases {
            #expect(Hex.encode(HMACSHA256.mac(key: key, message: msg)) == expected)
        }
        #expect(HMACSHA256(key: Array("Jefe".utf8)).fingerprint(Array("what do ya want for nothing?".utf8)) == "5bdcc146bf60")
    }

    /// One `HMACSHA256` serves many MACs: each starts from the prepared key state, which no MAC changes.
    @Test func hmacReusedForManyMessages() {
        let h = HMACSHA256(key: Array("Jefe".utf8))
        let jefe = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        #expect(Hex.encode(h.mac(Array("what do ya want for nothing?".utf8))) == jefe)
        #expect(Hex.encode(h.mac(Array("something else".utf8))) != jefe)
        #expect(Hex.encode(h.mac(Array("what do ya want for nothing?".utf8))) == jefe)
        let long = HMACSHA256(key: [UInt8](repeating: 0xaa, count: 131))
        _ = long.mac([1, 2, 3])
        #expect(Hex.encode(long.mac(Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8)))
                == "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    @Test func checksums() {
        #expect(Checksums.crc32(Array("123456789".utf8)) == 0xCBF43926)
        #expect(Checksums.luhnValid(Array("79927398713".utf8)))
        #expect(!Checksums.luhnValid(Array("79927398710".utf8)))
        #expect(Checksums.ibanValid(Array("GB82 WEST 1234 5698 7654 32".utf8)))
        #expect(!Checksums.ibanValid(Array("GB82 WEST 1234 5698 7654 33".utf8)))
        #expect(Checksums.ssnValid(area: 123, group: 45, serial: 6789))
        #expect(!Checksums.ssnValid(area: 666, group: 45, serial: 6789))
        #expect(!Checksums.ssnValid(area: 900, group: 45, serial: 6789))
        #expect(!Checksums.ssnValid(area: 123, group: 0, serial: 6789))
        var f = Fakes(seed: 7)
        let tok = Array(f.github().utf8)
        #expect(Checksums.githubChecksumValid(body: tok[4...]))
        var bad = tok
        bad[10] = bad[10] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a")
        #expect(!Checksums.githubChecksumValid(body: bad[4...]))
    }

    @Test func entropy() {
        #expect(Entropy.shannon(Array("aaaa".utf8)) == 0)
        #expect(abs(Entropy.shannon(Array("abcd".utf8)) - 2) < 1e-9)
    }
}
