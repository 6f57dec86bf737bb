package import CFleetProto
package import ProtobufArena
import Glibc

/// A message that converts to and from its protobuf-c struct; encoding and decoding are shared.
package protocol ProtobufCMessageConvertible {
    associatedtype CMessage
    /// The generated `..._init` function: sets the descriptor and the defaults.
    static func initialize(_ message: UnsafeMutablePointer<CMessage>)
    func fill(_ message: inout CMessage, arena: CArena)
    init(_ message: CMessage)
    /// Fills `message` and runs `pack` while it is valid. By default `fill` copies every field into the arena; a
    /// message with a model in it lends the model's bytes to protobuf-c instead, which reads them once, as it packs.
    func withFilled<R>(_ message: UnsafeMutablePointer<CMessage>, arena: CArena, _ pack: () -> R) -> R
}

extension ProtobufCMessageConvertible {
    package func withFilled<R>(_ message: UnsafeMutablePointer<CMessage>, arena: CArena, _ pack: () -> R) -> R {
        fill(&message.pointee, arena: arena)
        return pack()
    }
}

/// A message with a model in it (an evaluation, a push): its model's bytes are lent to protobuf-c while it packs
/// (the field points at the array's own storage), not copied into the arena first, and are copied once from the body
/// when it is decoded.
package protocol CarriesModel: ProtobufCMessageConvertible {
    var model: [UInt8] { get set }
    /// Fills every field, the model's with `model`.
    func fill(_ message: inout CMessage, arena: CArena, model: ProtobufCBinaryData)
}

extension CarriesModel {
    package func fill(_ message: inout CMessage, arena: CArena) {
        fill(&message, arena: arena, model: arena.bytes(model))
    }

    package func withFilled<R>(_ message: UnsafeMutablePointer<CMessage>, arena: CArena, _ pack: () -> R) -> R {
        // An empty model gets the arena's non-NULL empty block, as `CArena.bytes` gives it.
        guard !model.isEmpty else {
            fill(&message.pointee, arena: arena)
            return pack()
        }
        return model.withUnsafeBufferPointer { buffer in
            fill(&message.pointee, arena: arena,
                 model: ProtobufCBinaryData(len: buffer.count, data: UnsafeMutablePointer(mutating: buffer.baseAddress)))
            return pack()
        }
    }

    /// Decodes one message; `FleetError.malformedMessage` when the bytes are not one. The model (field 2 of both
    /// messages) is copied once, straight from `bytes`: protobuf-c decodes the other fields only, from the body
    /// without the model's field, instead of copying the model into its own allocation first for it to be copied
    /// again into the array. Bytes whose fields cannot be walked go to protobuf-c whole, which says what is wrong.
    package init(decoding bytes: [UInt8]) throws(FleetError) {
        guard let located = bytes.withUnsafeBufferPointer({ lastLengthDelimitedField(2, in: $0) }) else {
            try self.init(unpacking: bytes)
            return
        }
        var rest: [UInt8] = []
        rest.reserveCapacity(bytes.count - located.field.count)
        rest += bytes[..<located.field.lowerBound]
        rest += bytes[located.field.upperBound...]
        try self.init(unpacking: rest)
        model = Array(bytes[located.value])
    }
}

/// Where the last top-level length-delimited field `number` of a protobuf encoding lies (the whole field and its
/// value), the one a decoder keeps; nil when there is none, or when the bytes are not a sequence of well-formed fields.
func lastLengthDelimitedField(_ number: UInt64, in bytes: UnsafeBufferPointer<UInt8>)
    -> (field: Range<Int>, value: Range<Int>)?
{
    var position = 0
    func varint() -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: 0, to: 64, by: 7) {
            guard position < bytes.count else { return nil }
            let byte = bytes[position]
            position += 1
            value |= UInt64(byte & 0x7f) << UInt64(shift)
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }
    var found: (field: Range<Int>, value: Range<Int>)?
    while position < bytes.count {
        let start = position
        guard let key = varint() else { return nil }
        switch key & 7 {
        case 0: guard varint() != nil else { return nil }
        case 1: position += 8
        case 5: position += 4
        case 2:
            guard let length = varint(), length <= UInt64(bytes.count - position) else { return nil }
            let value = position..<position + Int(length)
            position = value.upperBound
            if key >> 3 == number { found = (start..<position, value) }
        default: return nil  // groups (3, 4) and unknown wire types: protobuf-c's to judge
        }
        guard position <= bytes.count else { return nil }
    }
    return found
}

extension ProtobufCMessageConvertible {
    /// The protobuf encoding of this message.
    package func encoded() -> [UInt8] {
        let arena = CArena()
        let message = UnsafeMutablePointer<CMessage>.allocate(capacity: 1)
        defer { message.deallocate() }
        Self.initialize(message)
        return withFilled(message, arena: arena) {
            message.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { base in
                let size = protobuf_c_message_get_packed_size(base)
                guard size > 0 else { return [] }
                // Packed straight into the array's uninitialized storage: a model's bytes are written once.
                return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
                    count = protobuf_c_message_pack(base, buffer.baseAddress!)
                }
            }
        }
    }

    /// Decodes one message; `FleetError.malformedMessage` when the bytes are not one.
    package init(decoding bytes: [UInt8]) throws(FleetError) {
        try self.init(unpacking: bytes)
    }

    /// Decodes one message with protobuf-c, every field copied out of its unpacked struct.
    init(unpacking bytes: [UInt8]) throws(FleetError) {
        // The descriptor's address comes from the generated init: a C global copied into Swift would be a copy.
        let template = UnsafeMutablePointer<CMessage>.allocate(capacity: 1)
        Self.initialize(template)
        let descriptor = template.withMemoryRebound(to: ProtobufCMessage.self, capacity: 1) { $0.pointee.descriptor }
        template.deallocate()
        var one: UInt8 = 0
        let unpacked = bytes.withUnsafeBufferPointer { buffer in
            withUnsafeMutablePointer(to: &one) { fallback in
                protobuf_c_message_unpack(descriptor, nil, buffer.count, buffer.baseAddress ?? UnsafePointer(fallback))
            }
        }
        guard let unpacked else {
            throw FleetError.malformedMessage("\(Self.self): the body is not a valid protobuf encoding of it")
        }
        defer { protobuf_c_message_free_unpacked(unpacked, nil) }
        self.init(UnsafeRawPointer(unpacked).load(as: CMessage.self))
    }
}

private func string(_ pointer: UnsafeMutablePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

private func bytes(_ data: ProtobufCBinaryData) -> [UInt8] {
    guard data.len > 0, let pointer = data.data else { return [] }
    return Array(UnsafeBufferPointer(start: pointer, count: data.len))
}

private func array<C>(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?, _ count: Int) -> [C] {
    guard let pointer, count > 0 else { return [] }
    return (0..<count).compactMap { pointer[$0]?.pointee }
}

private func fillAttributes(_ attributes: [String: String], arena: CArena)
    -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Nas__Fleet__Attribute>?>?)
{
    let sorted = attributes.sorted { $0.key < $1.key }
    let pointers = arena.messages(sorted.count) { (index, element: UnsafeMutablePointer<Nas__Fleet__Attribute>) in
        nas__fleet__attribute__init(element)
        element.pointee.key = arena.string(sorted[index].key)
        element.pointee.value = arena.string(sorted[index].value)
    }
    return (sorted.count, pointers)
}

private func readAttributes(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<Nas__Fleet__Attribute>?>?, _ count: Int)
    -> [String: String]
{
    var result: [String: String] = [:]
    for attribute in array(pointer, count) { result[string(attribute.key)] = string(attribute.value) }
    return result
}

private func fillMetrics(_ metrics: [String: Double], arena: CArena)
    -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Nas__Fleet__Metric>?>?)
{
    let sorted = metrics.sorted { $0.key < $1.key }
    let pointers = arena.messages(sorted.count) { (index, element: UnsafeMutablePointer<Nas__Fleet__Metric>) in
        nas__fleet__metric__init(element)
        element.pointee.name = arena.string(sorted[index].key)
        element.pointee.value = sorted[index].value
    }
    return (sorted.count, pointers)
}

private func readMetrics(_ pointer: UnsafeMutablePointer<UnsafeMutablePointer<Nas__Fleet__Metric>?>?, _ count: Int)
    -> [String: Double]
{
    var result: [String: Double] = [:]
    for metric in array(pointer, count) { result[string(metric.name)] = metric.value }
    return result
}

extension ErrorMessage: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__Error>) { nas__fleet__error__init(message) }
    package func fill(_ message: inout Nas__Fleet__Error, arena: CArena) {
        message.code = Nas__Fleet__ErrorCode(rawValue: UInt32(code.rawValue))
        message.message = arena.string(self.message)
    }
    package init(_ message: Nas__Fleet__Error) {
        code = WireErrorCode(rawValue: Int(message.code.rawValue)) ?? .unspecified
        self.message = string(message.message)
    }
}

extension RegisterRequest: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__RegisterRequest>) {
        nas__fleet__register_request__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__RegisterRequest, arena: CArena) {
        message.device_type = arena.string(deviceType)
        (message.n_attributes, message.attributes) = fillAttributes(attributes, arena: arena)
        message.capacity = capacity
        message.address = arena.string(address)
        message.worker_id = arena.string(workerID)
        message.worker_secret = arena.bytes(workerSecret)
    }
    package init(_ message: Nas__Fleet__RegisterRequest) {
        deviceType = string(message.device_type)
        attributes = readAttributes(message.attributes, message.n_attributes)
        capacity = message.capacity
        address = string(message.address)
        workerID = string(message.worker_id)
        workerSecret = bytes(message.worker_secret)
    }
}

extension RegisterResponse: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__RegisterResponse>) {
        nas__fleet__register_response__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__RegisterResponse, arena: CArena) {
        message.worker_id = arena.string(workerID)
        message.lease_ms = leaseMilliseconds
        message.heartbeat_ms = heartbeatMilliseconds
        message.worker_secret = arena.bytes(workerSecret)
    }
    package init(_ message: Nas__Fleet__RegisterResponse) {
        workerID = string(message.worker_id)
        leaseMilliseconds = message.lease_ms
        heartbeatMilliseconds = message.heartbeat_ms
        workerSecret = bytes(message.worker_secret)
    }
}

extension HeartbeatRequest: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__HeartbeatRequest>) {
        nas__fleet__heartbeat_request__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__HeartbeatRequest, arena: CArena) {
        message.worker_id = arena.string(workerID)
        message.worker_secret = arena.bytes(workerSecret)
    }
    package init(_ message: Nas__Fleet__HeartbeatRequest) {
        workerID = string(message.worker_id)
        workerSecret = bytes(message.worker_secret)
    }
}

extension HeartbeatResponse: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__HeartbeatResponse>) {
        nas__fleet__heartbeat_response__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__HeartbeatResponse, arena: CArena) { message.lease_ms = leaseMilliseconds }
    package init(_ message: Nas__Fleet__HeartbeatResponse) { leaseMilliseconds = message.lease_ms }
}

extension DeregisterRequest: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__DeregisterRequest>) {
        nas__fleet__deregister_request__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__DeregisterRequest, arena: CArena) {
        message.worker_id = arena.string(workerID)
        message.worker_secret = arena.bytes(workerSecret)
    }
    package init(_ message: Nas__Fleet__DeregisterRequest) {
        workerID = string(message.worker_id)
        workerSecret = bytes(message.worker_secret)
    }
}

extension DeregisterResponse: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__DeregisterResponse>) {
        nas__fleet__deregister_response__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__DeregisterResponse, arena: CArena) {}
    package init(_ message: Nas__Fleet__DeregisterResponse) {}
}

extension EvaluateRequest: ProtobufCMessageConvertible, CarriesModel {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__EvaluateRequest>) {
        nas__fleet__evaluate_request__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__EvaluateRequest, arena: CArena, model: ProtobufCBinaryData) {
        message.device_type = arena.string(deviceType)
        message.model = model
        message.sha256 = arena.bytes(sha256)
        message.deadline_ms = deadlineMilliseconds
    }
    package init(_ message: Nas__Fleet__EvaluateRequest) {
        deviceType = string(message.device_type)
        model = bytes(message.model)
        sha256 = bytes(message.sha256)
        deadlineMilliseconds = message.deadline_ms
    }
}

extension EvaluateResponse: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__EvaluateResponse>) {
        nas__fleet__evaluate_response__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__EvaluateResponse, arena: CArena) {
        (message.n_metrics, message.metrics) = fillMetrics(metrics, arena: arena)
        message.worker_id = arena.string(workerID)
        message.attempts = attempts
    }
    package init(_ message: Nas__Fleet__EvaluateResponse) {
        metrics = readMetrics(message.metrics, message.n_metrics)
        workerID = string(message.worker_id)
        attempts = message.attempts
    }
}

extension ListWorkersRequest: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__ListWorkersRequest>) {
        nas__fleet__list_workers_request__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__ListWorkersRequest, arena: CArena) {}
    package init(_ message: Nas__Fleet__ListWorkersRequest) {}
}

extension WorkerInfo: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__WorkerInfo>) {
        nas__fleet__worker_info__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__WorkerInfo, arena: CArena) {
        message.worker_id = arena.string(workerID)
        message.device_type = arena.string(deviceType)
        (message.n_attributes, message.attributes) = fillAttributes(attributes, arena: arena)
        message.state = arena.string(state)
        message.capacity = capacity
        message.in_flight = inFlight
        message.done = done
        message.failed = failed
        message.last_heartbeat_ms_ago = lastHeartbeatMillisecondsAgo
        message.address = arena.string(address)
    }
    package init(_ message: Nas__Fleet__WorkerInfo) {
        workerID = string(message.worker_id)
        deviceType = string(message.device_type)
        attributes = readAttributes(message.attributes, message.n_attributes)
        state = string(message.state)
        capacity = message.capacity
        inFlight = message.in_flight
        done = message.done
        failed = message.failed
        lastHeartbeatMillisecondsAgo = message.last_heartbeat_ms_ago
        address = string(message.address)
    }
}

extension ListWorkersResponse: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__ListWorkersResponse>) {
        nas__fleet__list_workers_response__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__ListWorkersResponse, arena: CArena) {
        message.n_workers = workers.count
        message.workers = arena.messages(workers.count) { (index, element: UnsafeMutablePointer<Nas__Fleet__WorkerInfo>) in
            nas__fleet__worker_info__init(element)
            workers[index].fill(&element.pointee, arena: arena)
        }
    }
    package init(_ message: Nas__Fleet__ListWorkersResponse) {
        workers = array(message.workers, message.n_workers).map(WorkerInfo.init)
    }
}

extension RunRequest: ProtobufCMessageConvertible, CarriesModel {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__RunRequest>) {
        nas__fleet__run_request__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__RunRequest, arena: CArena, model: ProtobufCBinaryData) {
        message.sha256 = arena.bytes(sha256)
        message.model = model
        message.timeout_ms = timeoutMilliseconds
    }
    package init(_ message: Nas__Fleet__RunRequest) {
        sha256 = bytes(message.sha256)
        model = bytes(message.model)
        timeoutMilliseconds = message.timeout_ms
    }
}

extension RunResponse: ProtobufCMessageConvertible {
    package static func initialize(_ message: UnsafeMutablePointer<Nas__Fleet__RunResponse>) {
        nas__fleet__run_response__init(message)
    }
    package func fill(_ message: inout Nas__Fleet__RunResponse, arena: CArena) {
        (message.n_metrics, message.metrics) = fillMetrics(metrics, arena: arena)
    }
    package init(_ message: Nas__Fleet__RunResponse) { metrics = readMetrics(message.metrics, message.n_metrics) }
}
