/// The fleet's wire messages as Swift values; `FleetMessages+ProtobufC.swift` converts them to and from the
/// protobuf-c structs generated from `Sources/CFleetProto/proto/fleet.proto`.

/// The calls of the fleet: `POST /<service>/<Method>`.
enum FleetPath {
    static let register = "/nas.fleet.Coordinator/Register"
    static let heartbeat = "/nas.fleet.Coordinator/Heartbeat"
    static let deregister = "/nas.fleet.Coordinator/Deregister"
    static let evaluate = "/nas.fleet.Coordinator/Evaluate"
    static let listWorkers = "/nas.fleet.Coordinator/ListWorkers"
    static let run = "/nas.fleet.Worker/Run"
}

/// The wire's error codes (the `ErrorCode` enum of fleet.proto), with the HTTP status each travels with.
enum WireErrorCode: Int, Sendable {
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

    var httpStatus: Int {
        switch self {
        case .unauthenticated: 401
        case .badRequest: 400
        case .notFound, .unknownWorker: 404
        case .tooLarge: 413
        case .modelNotSupported, .badModel: 422
        case .workerLost, .noWorker: 503
        case .timedOut: 504
        case .modelNotCached: 409
        case .runnerFailed, .internal, .unspecified: 500
        }
    }
}

struct ErrorMessage: Equatable, Sendable {
    var code: WireErrorCode
    var message: String
}

struct RegisterRequest: Equatable, Sendable {
    var deviceType = ""
    var attributes: [String: String] = [:]
    var capacity: UInt32 = 1
    var address = ""
    var workerID = ""
}

struct RegisterResponse: Equatable, Sendable {
    var workerID = ""
    var leaseMilliseconds: UInt32 = 0
    var heartbeatMilliseconds: UInt32 = 0
}

struct HeartbeatRequest: Equatable, Sendable {
    var workerID = ""
}

struct HeartbeatResponse: Equatable, Sendable {
    var leaseMilliseconds: UInt32 = 0
}

struct DeregisterRequest: Equatable, Sendable {
    var workerID = ""
}

struct DeregisterResponse: Equatable, Sendable {}

struct EvaluateRequest: Equatable, Sendable {
    var deviceType = ""
    var model: [UInt8] = []
    var sha256: [UInt8] = []
    var deadlineMilliseconds: UInt32 = 0
}

struct EvaluateResponse: Equatable, Sendable {
    var metrics: [String: Double] = [:]
    var workerID = ""
    var attempts: UInt32 = 0
}

struct ListWorkersRequest: Equatable, Sendable {}

struct WorkerInfo: Equatable, Sendable {
    var workerID = ""
    var deviceType = ""
    var attributes: [String: String] = [:]
    var state = ""
    var capacity: UInt32 = 0
    var inFlight: UInt32 = 0
    var done: UInt64 = 0
    var failed: UInt64 = 0
    var lastHeartbeatMillisecondsAgo: UInt64 = 0
    var address = ""
}

struct ListWorkersResponse: Equatable, Sendable {
    var workers: [WorkerInfo] = []
}

struct RunRequest: Equatable, Sendable {
    var sha256: [UInt8] = []
    var model: [UInt8] = []
    var timeoutMilliseconds: UInt32 = 0
}

struct RunResponse: Equatable, Sendable {
    var metrics: [String: Double] = [:]
}
