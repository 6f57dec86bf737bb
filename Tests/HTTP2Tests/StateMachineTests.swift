import Testing

@testable import HTTP2

/// The transport's rules as values, without sockets: events in, actions out, time injected.
@Suite struct ServerStreamTests {
    static let gate = RequestGate(token: "t", routes: ["/s/M"])

    static func stream(_ headers: [(String, String)], maxBodyBytes: Int = 10) -> (ServerStream, ServerStream.Action) {
        var stream = ServerStream(maxBodyBytes: maxBodyBytes)
        for (name, value) in headers { stream.header(name: name, value: value) }
        let action = stream.headersEnded(gate: gate)
        return (stream, action)
    }

    static let good = [(":method", "POST"), (":path", "/s/M"), ("authorization", "Bearer t")]

    @Test func aRequestIsDispatchedOnlyOnceTheClientEndedIt() {
        var (stream, action) = Self.stream(Self.good)
        #expect(action == .none)
        #expect(stream.data([1, 2, 3]) == .none)
        #expect(stream.data([4]) == .none)
        #expect(stream.ended() == .dispatch(HTTP2Request(path: "/s/M", body: [1, 2, 3, 4])))
        #expect(stream.ended() == .none)
        #expect(stream.state == .done)
    }

    @Test func refusalsWaitForTheEndOfTheRequestAndDropItsBody() {
        for (headers, refusal) in [
            ([(":method", "POST"), (":path", "/s/M")], HTTP2Rejection.unauthenticated),
            ([(":method", "POST"), (":path", "/s/M"), ("authorization", "Bearer tt")], .unauthenticated),
            ([(":method", "POST"), (":path", "/s/M"), ("authorization", "Bearer ")], .unauthenticated),
            ([(":method", "POST"), (":path", "/s/X"), ("authorization", "Bearer t")], .notFound(path: "/s/X")),
            ([(":method", "GET"), (":path", "/s/M"), ("authorization", "Bearer t")],
             .methodNotAllowed(method: "GET", path: "/s/M")),
        ] {
            var (stream, action) = Self.stream(headers)
            #expect(action == .none)
            #expect(stream.data([UInt8](repeating: 0, count: 100)) == .none)
            #expect(stream.state == .refused(refusal, answered: false))
            #expect(stream.ended() == .reject(refusal))
            #expect(stream.ended() == .none)
        }
    }

    /// RFC 7235 2.1: the auth scheme is case-insensitive; the token is not.
    @Test func theBearerSchemeMatchesInAnyCaseTheTokenExactly() {
        for (value, accepted) in [
            ("Bearer t", true), ("bearer t", true), ("BEARER t", true), ("bEaReR   t", true),
            ("Bearert", false), ("Basic t", false), ("Bearer T", false), ("Bearer", false), ("bearer\tt", false),
        ] {
            let refusal = Self.gate.check(method: "POST", path: "/s/M", authorization: value)
            #expect((refusal == nil) == accepted, "authorization: \(value)")
        }
    }

    @Test func aBodyOverTheLimitIsAnsweredAtOnce() {
        var (declared, action) = Self.stream(Self.good + [("content-length", "11")])
        #expect(action == .reject(.tooLarge(limit: 10)))
        #expect(declared.data([1]) == .none)
        #expect(declared.ended() == .none)

        var (found, none) = Self.stream(Self.good)
        #expect(none == .none)
        #expect(found.data([UInt8](repeating: 1, count: 10)) == .none)
        #expect(found.data([1]) == .reject(.tooLarge(limit: 10)))
        #expect(found.data([1]) == .none)
        #expect(found.ended() == .none)
    }

    @Test func onlyTheFieldsARequestNeedsAreKept() {
        for (name, kept) in [(":path", true), (":method", true), ("authorization", true), ("content-length", true),
                             (":scheme", false), ("content-type", false), ("user-agent", false), (":authority", false)] {
            #expect(Array(name.utf8).withUnsafeBufferPointer { ServerStream.keeps($0) } == kept, "\(name)")
        }
    }

    @Test func theTokenIsCheckedBeforeTheRoute() {
        #expect(Self.gate.check(method: "POST", path: "/nope", authorization: nil) == .unauthenticated)
        #expect(Self.gate.check(method: "POST", path: "/nope", authorization: "Bearer t") == .notFound(path: "/nope"))
        #expect(Self.gate.check(method: "POST", path: "/s/M", authorization: "Bearer t") == nil)
    }
}

@Suite struct ClientStreamTests {
    static func answer(status: String, body: [UInt8], ended: Bool) -> ClientStream {
        var stream = ClientStream(maxResponseBytes: 8)
        stream.header(name: ":status", value: status)
        #expect(stream.data(body) == .none)
        if ended { stream.responseEnded() }
        return stream
    }

    @Test func anAnswerThatEndedCountsEvenWhenTheStreamIsResetAfterIt() throws {
        let refused = Self.answer(status: "413", body: [1, 2], ended: true)
        #expect(try refused.closed(reason: "CANCEL").get() == HTTP2Response(status: 413, body: [1, 2]))
        let ok = Self.answer(status: "200", body: [3], ended: true)
        #expect(try ok.closed(reason: "NO_ERROR").get() == HTTP2Response(status: 200, body: [3]))
    }

    @Test func aRefusalWithItsErrorBodyCountsEvenWhenItsEndIsCutByTheReset() throws {
        let cut = Self.answer(status: "401", body: [9], ended: false)
        #expect(try cut.closed(reason: "STREAM_CLOSED").get() == HTTP2Response(status: 401, body: [9]))
    }

    @Test func aSuccessCutShortOrNoAnswerAtAllIsATransportFailure() {
        let cut = Self.answer(status: "200", body: [1], ended: false)
        guard case .failure(let error) = cut.closed(reason: "INTERNAL_ERROR") else {
            Issue.record("a truncated answer was delivered")
            return
        }
        #expect(error.kind == .transport)
        #expect(error.message == "the stream was reset (INTERNAL_ERROR)")
        let nothing = ClientStream(maxResponseBytes: 8)
        #expect((try? nothing.closed(reason: "REFUSED_STREAM").get()) == nil)
    }

    @Test func anAnswerOverTheCapCancelsTheCall() {
        var stream = ClientStream(maxResponseBytes: 4)
        stream.header(name: ":status", value: "200")
        #expect(stream.data([1, 2, 3]) == .none)
        guard case .cancel(let error) = stream.data([4, 5]) else {
            Issue.record("an answer over the cap was kept")
            return
        }
        #expect(error.message.contains("over 4 bytes"))
        stream.responseEnded()
        #expect((try? stream.closed(reason: "CANCEL").get()) == nil)
    }
}

@Suite struct PeerConnectionTests {
    static let start = ContinuousClock.now

    static func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    @Test func theFirstCallOpensTheConnectionAndTheOthersShareIt() {
        var peer = PeerConnection(authority: "h:1")
        #expect(peer.call(1, deadline: Self.at(100), now: Self.at(0)) == .connect)
        #expect(peer.call(2, deadline: Self.at(100), now: Self.at(1)) == nil)
        #expect(peer.phase == .connecting)
        #expect(peer.connected() == [.submit(call: 1), .submit(call: 2)])
        #expect(peer.call(3, deadline: Self.at(100), now: Self.at(2)) == .submit(call: 3))
        #expect(peer.connected() == [])
        peer.ended(1)
        #expect(!peer.isOpen(1))
        #expect(peer.isOpen(2))
        #expect(peer.openCalls == 2)
    }

    @Test func aConnectionThatCannotOpenFailsEveryWaitingCallAndTheNextCallTriesAgain() {
        var peer = PeerConnection(authority: "h:1")
        _ = peer.call(1, deadline: Self.at(100), now: Self.at(0))
        _ = peer.call(2, deadline: Self.at(100), now: Self.at(0))
        let error = HTTP2Error(.transport, "cannot connect to h:1: Connection refused")
        #expect(peer.connectFailed("Connection refused") == [.fail(call: 1, error), .fail(call: 2, error)])
        #expect(peer.phase == .idle)
        #expect(peer.openCalls == 0)
        #expect(peer.call(3, deadline: Self.at(100), now: Self.at(5)) == .connect)
    }

    @Test func aDroppedConnectionFailsItsCallsAndIsReplaced() {
        var peer = PeerConnection(authority: "h:1")
        _ = peer.call(1, deadline: Self.at(100), now: Self.at(0))
        _ = peer.connected()
        _ = peer.call(2, deadline: Self.at(100), now: Self.at(0))
        peer.ended(1)
        let error = HTTP2Error(.transport, "the connection to h:1 was lost: reset")
        #expect(peer.connectionLost("reset") == [.fail(call: 2, error)])
        #expect(peer.connectionLost("again") == [])
        #expect(peer.call(3, deadline: Self.at(100), now: Self.at(1)) == .connect)
    }

    @Test func callsPastTheirDeadlineFailAndTheSentOnesAreReset() {
        var peer = PeerConnection(authority: "h:1")
        _ = peer.call(1, deadline: Self.at(50), now: Self.at(0))
        _ = peer.connected()
        _ = peer.call(2, deadline: Self.at(80), now: Self.at(0))
        _ = peer.call(3, deadline: Self.at(200), now: Self.at(0))
        #expect(peer.earliestDeadline == Self.at(50))
        #expect(peer.expire(now: Self.at(49)) == [])
        let timedOut = HTTP2Error(.timedOut, "no answer in time")
        #expect(peer.expire(now: Self.at(80)).sorted { "\($0)" < "\($1)" }
            == [.cancel(call: 1), .cancel(call: 2), .fail(call: 1, timedOut), .fail(call: 2, timedOut)])
        #expect(peer.earliestDeadline == Self.at(200))
        #expect(!peer.isOpen(1))
        #expect(peer.isOpen(3))
        // A call already past its deadline fails at once; one waiting for the connection fails without a reset.
        #expect(peer.call(4, deadline: Self.at(100), now: Self.at(100)) == .fail(call: 4, timedOut))
        _ = peer.connectionLost("gone")
        _ = peer.call(5, deadline: Self.at(300), now: Self.at(250))
        #expect(peer.expire(now: Self.at(300)) == [.fail(call: 5, timedOut)])
        #expect(peer.connected() == [])
    }

    @Test func shuttingDownFailsEveryCall() {
        var peer = PeerConnection(authority: "h:1")
        _ = peer.call(1, deadline: Self.at(50), now: Self.at(0))
        _ = peer.connected()
        _ = peer.call(2, deadline: Self.at(50), now: Self.at(0))
        let error = HTTP2Error(.transport, "bye")
        #expect(peer.shutDown("bye") == [.fail(call: 1, error), .fail(call: 2, error)])
        #expect(peer.openCalls == 0)
        #expect(peer.earliestDeadline == nil)
    }
}

@Suite struct AddressTests {
    @Test func addressesAreHTTPOrHTTPSWithHostAndPort() {
        #expect(HTTP2Client.parse("http://127.0.0.1:80/a/b") == HTTP2Client.Target(
            origin: "http://127.0.0.1:80", authority: "127.0.0.1:80", host: "127.0.0.1", port: "80", path: "/a/b",
            secure: false))
        #expect(HTTP2Client.parse("http://[::1]:8080") == HTTP2Client.Target(
            origin: "http://[::1]:8080", authority: "[::1]:8080", host: "::1", port: "8080", path: "/", secure: false))
        #expect(HTTP2Client.parse("https://fleet.example:7878/x") == HTTP2Client.Target(
            origin: "https://fleet.example:7878", authority: "fleet.example:7878", host: "fleet.example", port: "7878",
            path: "/x", secure: true))
        for bad in ["ftp://h:1/", "http://h/", "https://:1/", "http://h:x/", "h:1", "httpss://h:1/"] {
            #expect(HTTP2Client.parse(bad) == nil, "\(bad)")
        }
    }
}

/// A server connection's deadlines (issue 16 item 2), with time injected.
@Suite struct ConnectionDeadlinesTests {
    static let start = ContinuousClock.now
    static func at(_ milliseconds: Int) -> ContinuousClock.Instant { start + .milliseconds(milliseconds) }

    static let limits: ServerLimits = {
        var limits = ServerLimits()
        limits.handshakeTimeout = .milliseconds(100)
        limits.headerTimeout = .milliseconds(200)
        limits.requestTimeout = .milliseconds(1000)
        limits.idleTimeout = .milliseconds(500)
        return limits
    }()

    @Test func aConnectionMustHandshakeInTime() {
        var deadlines = ConnectionDeadlines(limits: Self.limits, now: Self.at(0))
        #expect(deadlines.overdue(now: Self.at(99)) == nil)
        guard case .handshake? = deadlines.overdue(now: Self.at(100)) else {
            Issue.record("no handshake timeout")
            return
        }
        deadlines.frameReceived()
        #expect(deadlines.overdue(now: Self.at(100)) == nil)
    }

    @Test func headersAndWholeRequestsMustArriveInTime() {
        var deadlines = ConnectionDeadlines(limits: Self.limits, now: Self.at(0))
        deadlines.frameReceived()
        deadlines.requestBegan(1, now: Self.at(10))
        #expect(deadlines.overdue(now: Self.at(209)) == nil)
        #expect(deadlines.overdue(now: Self.at(210)) == .slow("a request's headers took longer than 0.2 seconds"))
        deadlines.headersEnded(1, now: Self.at(150))
        // A body arriving keeps the connection from being idle, but not past the request's own timeout.
        for time in stride(from: 200, to: 1010, by: 100) {
            deadlines.bodyArrived(now: Self.at(time))
        }
        #expect(deadlines.overdue(now: Self.at(1009)) == nil)
        #expect(deadlines.overdue(now: Self.at(1010)) == .slow("a request took longer than 1.0 seconds to arrive"))
        deadlines.requestEnded(1, now: Self.at(1005))
        #expect(deadlines.overdue(now: Self.at(1010)) == nil)
    }

    @Test func onlyAConnectionWithNothingToDoIsIdle() {
        var deadlines = ConnectionDeadlines(limits: Self.limits, now: Self.at(0))
        deadlines.frameReceived()
        deadlines.requestBegan(1, now: Self.at(0))
        deadlines.headersEnded(1, now: Self.at(0))
        deadlines.requestEnded(1, now: Self.at(0))
        // Its handler has the request (an evaluation waiting for a worker): not idle, however long it takes.
        #expect(deadlines.overdue(now: Self.at(900)) == nil)
        deadlines.streamClosed(1, now: Self.at(900))
        #expect(deadlines.overdue(now: Self.at(1399)) == nil)
        #expect(deadlines.overdue(now: Self.at(1400)) == .idle("no request for 0.5 seconds"))
    }
}

@Suite struct ServerStreamRoomTests {
    @Test func aBodyTheServerHasNoRoomForIsRefusedWith503AtOnce() {
        var (stream, _) = ServerStreamTests.stream(ServerStreamTests.good, maxBodyBytes: 100)
        #expect(stream.data([1, 2, 3], room: 3) == .none)
        #expect(stream.data([4, 5], room: 1) == .reject(.overloaded))
        #expect(stream.state == .refused(.overloaded, answered: true))
        #expect(stream.data([6], room: 100) == .none)
        #expect(stream.ended() == .none)
        #expect(HTTP2Rejection.overloaded.status == 503)
    }
}
