/// The version of this build: printed by `sluice version`, sent to SIEMs as the product version
/// (OCSF `metadata.product.version`).
public enum SluiceVersion {
    public static let current = "0.1.0"
}
