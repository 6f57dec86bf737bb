/// Why a fleet call failed: what went wrong and what to do, and whether another worker may succeed.
public struct FleetError: Error, CustomStringConvertible, Sendable, Equatable {
    package enum Code: String, Sendable {
        case unauthenticated, badRequest, notFound, tooLarge, unknownWorker
        case modelNotSupported, badModel, workerLost, timedOut, noWorker, modelNotCached, runnerFailed, unavailable
        case malformedMessage, transport, httpStatus, invalidConfiguration, runnerNotAvailable, `internal`
    }

    package let code: Code
    /// What failed, in words a user can act on.
    public let message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// True when retrying on another worker may succeed (worker lost, timed out); false for final errors.
    public var isRetryable: Bool {
        switch code {
        case .workerLost, .timedOut, .transport, .modelNotCached, .unavailable: true
        default: false
        }
    }

    /// True for errors that no other worker can fix: the model is not supported or is not a valid model.
    public var isFinalModelError: Bool { code == .modelNotSupported || code == .badModel }

    /// The message: what failed and what to do.
    public var description: String { message }

    package static func malformedMessage(_ detail: String) -> FleetError {
        FleetError(.malformedMessage, "malformed message: \(detail)")
    }
    package static func badRequest(_ detail: String) -> FleetError { FleetError(.badRequest, "bad request: \(detail)") }
    package static func unauthenticated() -> FleetError {
        FleetError(.unauthenticated,
                   "unauthenticated: the call needs `authorization: Bearer <token>` with the fleet's shared token "
                   + "(--token-file or NAS_FLEET_TOKEN on both sides)")
    }
    package static func notFound(_ path: String) -> FleetError {
        FleetError(.notFound, "not found: no call at \(path); calls are POST /nas.fleet.Coordinator/<Method>")
    }
    package static func tooLarge(limit: Int) -> FleetError {
        FleetError(.tooLarge, "request body over the limit of \(limit) bytes; raise --max-body-bytes on the server")
    }
    package static func unknownWorker(_ id: String) -> FleetError {
        FleetError(.unknownWorker, "unknown worker \(id): its lease lapsed or the coordinator restarted; register again")
    }
    package static func notThisWorker(_ id: String) -> FleetError {
        FleetError(.unauthenticated,
                   "unauthenticated: the worker_secret does not prove worker id \(id); a worker comes back with the id "
                   + "and secret its first registration returned, a new worker registers without worker_id")
    }
    package static func workerLost(_ id: String, _ detail: String) -> FleetError {
        FleetError(.workerLost, "worker \(id) was lost during the evaluation: \(detail)")
    }
    package static func timedOut(_ detail: String) -> FleetError { FleetError(.timedOut, "timed out: \(detail)") }
    package static func noWorker(deviceType: String, registered: [String]) -> FleetError {
        let types = registered.isEmpty ? "none" : registered.joined(separator: ", ")
        return FleetError(.noWorker,
                          "no worker serves device type '\(deviceType)' (registered device types: \(types)); start "
                          + "`nas worker --device-type \(deviceType)` or ask for a registered type")
    }
    /// The model is not a valid one (final: no other worker can measure it); for runners outside the fleet too.
    public static func badModel(_ detail: String) -> FleetError { FleetError(.badModel, "bad model: \(detail)") }
    /// Bytes that are not the ones their SHA-256 names (a worker's check, or the coordinator's beside a push).
    package static let hashMismatch = badModel("the model's bytes do not match its sha256")
    /// The runner cannot run one of the model's operators (final); for runners outside the fleet too.
    public static func modelNotSupported(_ detail: String) -> FleetError {
        FleetError(.modelNotSupported, "model not supported: \(detail)")
    }
    /// The server is stopping or holds as many request bodies as it may: the same call may succeed soon.
    package static func unavailable(_ detail: String) -> FleetError {
        FleetError(.unavailable, "unavailable: \(detail); retry in a moment")
    }
    package static func transport(_ detail: String) -> FleetError { FleetError(.transport, detail) }
    package static func invalidConfiguration(_ detail: String) -> FleetError { FleetError(.invalidConfiguration, detail) }

    /// The error as it travels on the wire: its code and the HTTP status that carries it.
    package var wire: ErrorMessage {
        let wireCode: WireErrorCode =
            switch code {
            case .unauthenticated: .unauthenticated
            case .badRequest, .malformedMessage, .invalidConfiguration: .badRequest
            case .notFound: .notFound
            case .tooLarge: .tooLarge
            case .unknownWorker: .unknownWorker
            case .modelNotSupported: .modelNotSupported
            case .badModel: .badModel
            case .workerLost, .transport: .workerLost
            case .timedOut: .timedOut
            case .noWorker: .noWorker
            case .modelNotCached: .modelNotCached
            case .unavailable: .unavailable
            case .runnerFailed, .runnerNotAvailable: .runnerFailed
            case .httpStatus, .internal: .internal
            }
        return ErrorMessage(code: wireCode, message: message)
    }

    /// The error a client reads from a failed call's encoded body.
    package init(wire: ErrorMessage) {
        let code: Code =
            switch wire.code {
            case .unauthenticated: .unauthenticated
            case .badRequest: .badRequest
            case .notFound: .notFound
            case .tooLarge: .tooLarge
            case .unknownWorker: .unknownWorker
            case .modelNotSupported: .modelNotSupported
            case .badModel: .badModel
            case .workerLost: .workerLost
            case .timedOut: .timedOut
            case .noWorker: .noWorker
            case .modelNotCached: .modelNotCached
            case .runnerFailed: .runnerFailed
            case .unavailable: .unavailable
            case .internal, .unspecified: .internal
            }
        self.init(code, wire.message)
    }
}
