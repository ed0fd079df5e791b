import CHyperscan
import Foundation

/// What speeds up detection in this process (for `sluice version --verbose`); read-only.
///
/// Guarantees: reports what scans actually use — `hyperscan` is false when libhs.so.5 cannot be
/// loaded or `SLUICE_DISABLE_HYPERSCAN` is set (detection then uses its pure-Swift prefilter),
/// `structuralUsesAVX2` false when the CPU lacks AVX2 or `SLUICE_DISABLE_AVX2` is set.
public enum DetectionAcceleration {
    /// Hyperscan prefilters the keywords.
    public static var hyperscan: Bool { HyperscanPrefilter.available }
    /// `SLUICE_DISABLE_HYPERSCAN` is set (so `hyperscan` is false whatever is installed).
    public static var hyperscanDisabled: Bool { ProcessInfo.processInfo.environment["SLUICE_DISABLE_HYPERSCAN"] != nil }
    /// The CPU has AVX2 (x86_64 only).
    public static var cpuHasAVX2: Bool { chs_cpu_has_avx2() != 0 }
    /// The structural scanner runs its AVX2 variant.
    public static var structuralUsesAVX2: Bool { chs_structural_uses_avx2() != 0 }
}
