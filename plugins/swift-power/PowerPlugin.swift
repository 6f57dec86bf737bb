// The power constraint, written in Swift: a plugin with its own score function.
//
// Below or at the power budget the factor is 1; above it the factor falls linearly,
// reaching 0 at (1 + 1/weight) times the budget: a budget a board's supply cannot exceed.
import CNasPlugin

private func power(
    _ args: UnsafePointer<nas_score_args>?, _ factor: UnsafeMutablePointer<Double>?,
    _ error: UnsafeMutablePointer<CChar>?, _ capacity: Int
) -> Int32 {
    guard let args = args?.pointee, let factor else { return Int32(NAS_STATUS_INVALID_INPUT.rawValue) }
    let overshoot = args.measured / args.target - 1
    factor.pointee = overshoot <= 0 ? 1 : max(0, 1 - args.weight * overshoot)
    return Int32(NAS_STATUS_OK.rawValue)
}

private nonisolated(unsafe) let descriptor: UnsafeMutablePointer<nas_constraint_descriptor> = {
    let pointer = UnsafeMutablePointer<nas_constraint_descriptor>.allocate(capacity: 1)
    pointer.initialize(
        to: nas_constraint_descriptor(
            abi_version: NAS_CONSTRAINT_ABI_VERSION,
            struct_size: UInt32(MemoryLayout<nas_constraint_descriptor>.size),
            name: staticString("power"),
            metric: staticString("power_w"),
            unit: staticString("W"),
            description: staticString("Average power draw during inference; linear penalty above the budget"),
            measure: nil,
            score: power))
    return pointer
}()

/// Strings that live as long as the library.
private func staticString(_ text: String) -> UnsafePointer<CChar> {
    let bytes = Array(text.utf8CString)
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    pointer.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(pointer)
}

@_cdecl("nas_constraint_plugin")
public func nasConstraintPlugin() -> UnsafePointer<nas_constraint_descriptor> {
    UnsafePointer(descriptor)
}
