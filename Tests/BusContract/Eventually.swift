/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
/// Shared by the stage test suites that wait for asynchronous effects on a bus.
public func eventually(timeout: Duration = .seconds(10), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let end = ContinuousClock.now + timeout
    while ContinuousClock.now < end {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}
