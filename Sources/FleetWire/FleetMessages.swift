// The fleet's wire (module `FleetWire`): what travels between callers, the coordinator and workers, apart from
// how it travels. It owns the messages (`FleetMessages`, converted to and from the protobuf-c structs generated
// from `Sources/CFleetProto/proto/fleet.proto`), the models' SHA-256, `FleetError` with its wire codes and HTTP
// statuses, and the coordinator's `Scheduler` (a value-type state machine: events in, actions out). It does no I/O:
// the transport is `HTTP2`, the coordinator and workers that use both are in `Fleet`.

/// The fleet's wire messages as Swift values; `FleetMessages+ProtobufC.swift` converts them to and from the
/// protobuf-c structs generated from `Sources/CFleetProto/proto/fleet.proto`.

/// The calls of the fleet: `POST /<service>/<Method>`.
package enum FleetPath {
    package static let register = "/nas.fleet.Coordinator/Register"
    package static let heartbeat = "/nas.fleet.Coordinator/Heartbeat"
    package static let deregister = "/nas.fleet.Coordinator/Deregister"
    package static let evaluate = "/nas.fleet.Coordinator/Evaluate"
    package static let listWorkers = "/nas.fleet.Coordinator/ListWorkers"
    package static let run = "/nas.fleet.Worker/Run"
}

/// The wire's error codes (the `ErrorCode` enum of fleet.proto), with the HTTP status each travels with.
package enum WireErrorCode: Int, Sendable {
    case unspecified = 0
    case unauthenticated = 1
    case badRequest = 2
    case notFound = 3
    case tooLarge = 4
    case unknownWorker = 5
    case modelNotSupported = 6
    case badModel = 7
    case workerLost = 8
    case timedOut = 9
    case noWorker = 10
    case modelNotCached = 11
    case runnerFailed = 12
    case `internal` = 13
    case unavailable = 14

    package var httpStatus: Int {
        switch self {
        case .unauthenticated: 401
        case .badRequest: 400
        case .notFound, .unknownWorker: 404
        case .tooLarge: 413
        case .modelNotSupported, .badModel: 422
        case .workerLost, .noWorker, .unavailable: 503
        case .timedOut: 504
        case .modelNotCached: 409
        case .runnerFailed, .internal, .unspecified: 500
        }
    }
}

package struct ErrorMessage: Equatable, Sendable {
    package var code: WireErrorCode
    package var message: String

    package init(code: WireErrorCode, message: String) {
        self.code = code
        self.message = message
    }
}

package struct RegisterRequest: Equatable, Sendable {
    package var deviceType = ""
    package var attributes: [String: String] = [:]
    package var capacity: UInt32 = 1
    package var address = ""
    package var workerID = ""
    package var workerSecret: [UInt8] = []

    package init(
        deviceType: String = "",
        attributes: [String: String] = [:],
        capacity: UInt32 = 1,
        address: String = "",
        workerID: String = "",
        workerSecret: [UInt8] = []
    ) {
        self.deviceType = deviceType
        self.attributes = attributes
        self.capacity = capacity
        self.address = address
        self.workerID = workerID
        self.workerSecret = workerSecret
    }
}

package struct RegisterResponse: Equatable, Sendable {
    package var workerID = ""
    package var leaseMilliseconds: UInt32 = 0
    package var heartbeatMilliseconds: UInt32 = 0
    package var workerSecret: [UInt8] = []

    package init(workerID: String = "", leaseMilliseconds: UInt32 = 0, heartbeatMilliseconds: UInt32 = 0,
                 workerSecret: [UInt8] = []) {
        self.workerID = workerID
        self.leaseMilliseconds = leaseMilliseconds
        self.heartbeatMilliseconds = heartbeatMilliseconds
        self.workerSecret = workerSecret
    }
}

package struct HeartbeatRequest: Equatable, Sendable {
    package var workerID = ""
    package var workerSecret: [UInt8] = []

    package init(workerID: String = "", workerSecret: [UInt8] = []) {
        self.workerID = workerID
        self.workerSecret = workerSecret
    }
}

package struct HeartbeatResponse: Equatable, Sendable {
    package var leaseMilliseconds: UInt32 = 0

    package init(leaseMilliseconds: UInt32 = 0) {
        self.leaseMilliseconds = leaseMilliseconds
    }
}

package struct DeregisterRequest: Equatable, Sendable {
    package var workerID = ""
    package var workerSecret: [UInt8] = []

    package init(workerID: String = "", workerSecret: [UInt8] = []) {
        self.workerID = workerID
        self.workerSecret = workerSecret
    }
}

package struct DeregisterResponse: Equatable, Sendable {
    package init() {}
}

package struct EvaluateRequest: Equatable, Sendable {
    package var deviceType = ""
    package var model: [UInt8] = []
    package var sha256: [UInt8] = []
    package var deadlineMilliseconds: UInt32 = 0

    package init(deviceType: String = "", model: [UInt8] = [], sha256: [UInt8] = [], deadlineMilliseconds: UInt32 = 0) {
        self.deviceType = deviceType
        self.model = model
        self.sha256 = sha256
        self.deadlineMilliseconds = deadlineMilliseconds
    }
}

package struct EvaluateResponse: Equatable, Sendable {
    package var metrics: [String: Double] = [:]
    package var workerID = ""
    package var attempts: UInt32 = 0

    package init(metrics: [String: Double] = [:], workerID: String = "", attempts: UInt32 = 0) {
        self.metrics = metrics
        self.workerID = workerID
        self.attempts = attempts
    }
}

package struct ListWorkersRequest: Equatable, Sendable {
    package init() {}
}

package struct WorkerInfo: Equatable, Sendable {
    package var workerID = ""
    package var deviceType = ""
    package var attributes: [String: String] = [:]
    package var state = ""
    package var capacity: UInt32 = 0
    package var inFlight: UInt32 = 0
    package var done: UInt64 = 0
    package var failed: UInt64 = 0
    package var lastHeartbeatMillisecondsAgo: UInt64 = 0
    package var address = ""

    package init(
        workerID: String = "",
        deviceType: String = "",
        attributes: [String: String] = [:],
        state: String = "",
        capacity: UInt32 = 0,
        inFlight: UInt32 = 0,
        done: UInt64 = 0,
        failed: UInt64 = 0,
        lastHeartbeatMillisecondsAgo: UInt64 = 0,
        address: String = ""
    ) {
        self.workerID = workerID
        self.deviceType = deviceType
        self.attributes = attributes
        self.state = state
        self.capacity = capacity
        self.inFlight = inFlight
        self.done = done
        self.failed = failed
        self.lastHeartbeatMillisecondsAgo = lastHeartbeatMillisecondsAgo
        self.address = address
    }
}

package struct ListWorkersResponse: Equatable, Sendable {
    package var workers: [WorkerInfo] = []

    package init(workers: [WorkerInfo] = []) {
        self.workers = workers
    }
}

package struct RunRequest: Equatable, Sendable {
    package var sha256: [UInt8] = []
    package var model: [UInt8] = []
    package var timeoutMilliseconds: UInt32 = 0

    package init(sha256: [UInt8] = [], model: [UInt8] = [], timeoutMilliseconds: UInt32 = 0) {
        self.sha256 = sha256
        self.model = model
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

package struct RunResponse: Equatable, Sendable {
    package var metrics: [String: Double] = [:]

    package init(metrics: [String: Double] = [:]) {
        self.metrics = metrics
    }
}
