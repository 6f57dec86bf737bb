import Foundation

/// Counts SIGINT and SIGTERM instead of dying on them, so the loop can stop gracefully.
final class InterruptCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var received = 0
    private var sources: [DispatchSourceSignal] = []

    var count: Int { lock.withLock { received } }

    func install() {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { [self] in lock.withLock { received += 1 } }
            source.resume()
            sources.append(source)
        }
    }

    func uninstall() {
        sources.forEach { $0.cancel() }
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}
