import Constraints
import Foundation

/// The content of `latency_worker_id.json`: who measures a trial and until when its claim holds.
///
/// `latency_worker_id` keeps the seed's key (the static-partition index of the worker); `worker` is unique per
/// worker process, and `lease_expires_at` (seconds since 1970) is when other workers may take the trial over.
public struct TrialClaim: Sendable, Hashable {
    /// The seed's worker index (`--latency-worker-id`).
    public var latencyWorkerID: Int
    /// The unique id of the worker process holding the claim.
    public var worker: String
    /// The device type the worker measures on.
    public var deviceType: String
    /// When the lease lapses, in seconds since 1970.
    public var leaseExpiresAt: Double

    /// Builds a claim.
    public init(latencyWorkerID: Int, worker: String, deviceType: String, leaseExpiresAt: Double) {
        self.latencyWorkerID = latencyWorkerID
        self.worker = worker
        self.deviceType = deviceType
        self.leaseExpiresAt = leaseExpiresAt
    }

    /// The JSON text.
    public func encoded() -> [UInt8] {
        let object: [String: Any] = [
            "latency_worker_id": latencyWorkerID, "worker": worker, "device_type": deviceType,
            "lease_expires_at": leaseExpiresAt,
        ]
        return Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data())
    }

    /// Reads a claim; nil for anything else (a seed claim without lease, garbage), which counts as lapsed.
    public static func decode(_ bytes: [UInt8]) -> TrialClaim? {
        guard let json = try? JSON.parse(bytes), case .string(let worker)? = json["worker"],
            case .number(let expiry)? = json["lease_expires_at"], expiry.isFinite
        else { return nil }
        var index = 0
        if case .number(let value)? = json["latency_worker_id"], value.isFinite { index = Int(value) }
        var device = ""
        if case .string(let value)? = json["device_type"] { device = value }
        return TrialClaim(latencyWorkerID: index, worker: worker, deviceType: device, leaseExpiresAt: expiry)
    }
}

/// A claim this worker holds: the generation to renew it from and its expiry.
public struct TrialLease: Sendable, Hashable {
    /// The claimed trial.
    public let trial: Int
    /// The claim object's generation as this worker last wrote it.
    public var generation: Int64
    /// When the lease lapses, in seconds since 1970.
    public var expiresAt: Double
    /// Whether the claim was taken over from a worker whose lease had lapsed.
    public let tookOver: Bool
}

/// Claims trials atomically, renews leases, and takes over lapsed claims by compare-and-swap.
///
/// A claim is created with create-if-absent, so of two workers racing for a fresh trial exactly one wins. A
/// claim whose lease lapsed (its worker died or stalled) is replaced by compare-and-swap against the
/// generation read, so of two workers racing to take it over exactly one wins. The holder renews by
/// compare-and-swap too, so a worker whose claim was taken over learns it at its next renewal. Lease expiries
/// are wall-clock times: workers' clocks must agree to well within a lease (NTP does).
public struct TrialClaims: Sendable {
    /// Where the job lives.
    public let storage: any ObjectStorage
    /// The unique id of this worker process.
    public let worker: String
    /// The seed's worker index written into claims.
    public let latencyWorkerID: Int
    /// The device type written into claims.
    public let deviceType: String
    /// How long a claim holds without renewal, in seconds.
    public let leaseDuration: Double
    /// Seconds since 1970; injected so that tests can let leases lapse without sleeping.
    public let clock: @Sendable () -> Double

    /// Builds a claimer.
    public init(
        storage: any ObjectStorage, worker: String, latencyWorkerID: Int, deviceType: String, leaseDuration: Double,
        clock: @escaping @Sendable () -> Double = { Date().timeIntervalSince1970 }
    ) {
        self.storage = storage
        self.worker = worker
        self.latencyWorkerID = latencyWorkerID
        self.deviceType = deviceType
        self.leaseDuration = leaseDuration
        self.clock = clock
    }

    private func claim(expiringAt expiry: Double) -> [UInt8] {
        TrialClaim(latencyWorkerID: latencyWorkerID, worker: worker, deviceType: deviceType, leaseExpiresAt: expiry)
            .encoded()
    }

    /// Claims `trial`; nil when another worker holds a live claim (or won the race for it).
    public func tryClaim(trial: Int) throws -> TrialLease? {
        let key = JobLayout.claimKey(trial: trial)
        for _ in 0..<3 {
            let expiry = clock() + leaseDuration
            if let generation = try storage.createIfAbsent(key, data: claim(expiringAt: expiry)) {
                return TrialLease(trial: trial, generation: generation, expiresAt: expiry, tookOver: false)
            }
            guard let current = try storage.read(key) else { continue }  // deleted in between: try again
            let existing = TrialClaim.decode(current.data)
            if let existing, existing.worker == worker {
                // Our own create, retried after a lost answer, or a claim of ours from an earlier attempt: it is
                // ours, with a fresh lease (the old one may be about to lapse, or have lapsed).
                guard
                    let generation = try storage.compareAndSwap(
                        key, data: claim(expiringAt: expiry), ifGeneration: current.generation)
                else { continue }  // changed in between: look again
                return TrialLease(trial: trial, generation: generation, expiresAt: expiry, tookOver: false)
            }
            if let existing, existing.leaseExpiresAt > clock() { return nil }
            guard
                let generation = try storage.compareAndSwap(
                    key, data: claim(expiringAt: expiry), ifGeneration: current.generation)
            else { return nil }  // another worker took it over first
            return TrialLease(trial: trial, generation: generation, expiresAt: expiry, tookOver: true)
        }
        return nil
    }

    /// Extends `lease` by a lease duration from now; nil when the claim is no longer this worker's.
    public func renew(_ lease: TrialLease) throws -> TrialLease? {
        let expiry = clock() + leaseDuration
        let key = JobLayout.claimKey(trial: lease.trial)
        guard
            let generation = try storage.compareAndSwap(
                key, data: claim(expiringAt: expiry), ifGeneration: lease.generation)
        else {
            // A retried request whose first attempt landed fails its precondition: the claim is still ours if it
            // holds exactly what we wrote.
            if let current = try storage.read(key), let existing = TrialClaim.decode(current.data),
                existing.worker == worker, existing.leaseExpiresAt == expiry
            {
                return TrialLease(
                    trial: lease.trial, generation: current.generation, expiresAt: expiry, tookOver: lease.tookOver)
            }
            return nil
        }
        var renewed = lease
        renewed.generation = generation
        renewed.expiresAt = expiry
        return renewed
    }
}
