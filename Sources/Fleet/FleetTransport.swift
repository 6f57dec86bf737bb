// The fleet (module `Fleet`): the coordinator, the device workers and their runners, the callers' client, object
// storage (local, Google Cloud Storage over libcurl) and the file exchange. It speaks the wire of `FleetWire`
// (messages, errors, the scheduler) over the transport of `HTTP2`; this file is where the two meet: transport
// failures and refusals become `FleetError`s, and servers answer on the event loop or in a task on `FleetExecutor`.

import Foundation
import HTTP2
import FleetWire

/// The fleet's use of the HTTP/2 transport: its errors as `FleetError`s, refusals answered with encoded error
/// messages, and servers whose calls are answered on the loop or, when they must wait, in a task on the fleet's
/// own threads.
extension FleetError {
    /// A transport failure as the fleet's error: timeouts are told apart, as they are retried differently.
    init(_ error: HTTP2Error) {
        switch error.kind {
        case .transport: self = .transport(error.message)
        case .timedOut: self = .timedOut(error.message)
        case .invalidAddress, .invalidConfiguration: self = .invalidConfiguration(error.message)
        }
    }

    /// A server's refusal of a request before its handler saw it.
    init(_ rejection: HTTP2Rejection) {
        switch rejection {
        case .unauthenticated: self = .unauthenticated()
        case .notFound(let path): self = .notFound(path)
        case .methodNotAllowed(let method, let path): self = .badRequest("\(method) \(path): every call is a POST")
        case .tooLarge(let limit): self = .tooLarge(limit: limit)
        case .overloaded: self = .unavailable("the server holds as many request bodies as it may (its limits)")
        }
    }
}

extension HTTP2Response {
    /// A failed call: the status of the error's code and the encoded error message.
    static func error(_ error: FleetError) -> HTTP2Response {
        let wire = error.wire
        return HTTP2Response(status: wire.code.httpStatus, body: wire.encoded())
    }
}

extension HTTP2Server {
    /// What a loop-thread handler does with a request.
    enum Disposition {
        /// Answer with this now.
        case now(HTTP2Response)
        /// The handler kept the responder and answers later, from any thread.
        case later
        /// Hand the request to the async handler.
        case async
    }

    /// A fleet server: refusals carry encoded error messages; each request is offered to `immediate` on the loop
    /// (bookkeeping that needs no waiting, answered with no thread hop), and the others go to `handler` in a task
    /// on `FleetExecutor`'s threads, so a busy global executor cannot hold the answer past the peer's timeout.
    convenience init(loop: EventLoop = .shared, fleet configuration: Configuration,
                     immediate: (@Sendable (HTTP2Request, HTTP2Responder) -> Disposition)? = nil,
                     handler: @escaping @Sendable (HTTP2Request) async -> HTTP2Response) {
        var configuration = configuration
        configuration.rejection = { .error(FleetError($0)) }
        self.init(configuration: configuration, loop: loop) { request, responder in
            switch immediate?(request, responder) ?? .async {
            case .now(let response): responder.respond(response)
            case .later: break
            case .async:
                Task(executorPreference: FleetExecutor.shared) { responder.respond(await handler(request)) }
            }
        }
    }

    /// Binds and serves; the error as the fleet's.
    @discardableResult
    func startServing() throws(FleetError) -> Int {
        do throws(HTTP2Error) {
            return try start()
        } catch {
            throw FleetError(error)
        }
    }
}

extension HTTP2Client {
    /// POSTs `body` to `url`; the failure as the fleet's error.
    func call(url: String, body: [UInt8], timeout: Duration) async throws(FleetError) -> HTTP2Response {
        do throws(HTTP2Error) {
            return try await post(url: url, body: body, timeout: timeout)
        } catch {
            throw FleetError(error)
        }
    }
}
