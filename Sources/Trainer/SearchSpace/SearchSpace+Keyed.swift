/// Where a decision sits in a search space: the same key in two choices means the same decision, even when the
/// choices' flat decision lists differ in length (a `one_of` whose candidates have decisions of their own).
///
/// The key is a path: list and dict positions (`[0].kernel_size`), then `/i` beneath candidate `i` of a `one_of`
/// and `#s` for slot `s` of a `sublist_of`. Model-based samplers count options per key; crossover swaps them.
public struct DecisionKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The path, e.g. `$[1].filters` or `$.block/2.kernel`.
    public var path: String

    /// A key from its path.
    public init(_ path: String) { self.path = path }

    public var description: String { path }

    public static func < (lhs: DecisionKey, rhs: DecisionKey) -> Bool { lhs.path < rhs.path }

    /// The key without the candidates taken on the way (`$.stages[1].blocks/2[0].kernel_size` ->
    /// `$.stages[1].blocks[0].kernel_size`): the decision's place in the built value, as a define-by-run space
    /// names it (Optuna's `stages[1].blocks[0].kernel_size`), shared by every candidate that holds a decision there.
    /// Two decisions of one choice never share it (a `one_of` takes one candidate; a `sublist_of`'s slots keep
    /// their `#slot`).
    public var place: DecisionKey {
        var out = ""
        var rest = Substring(path)
        while let slash = rest.firstIndex(of: "/") {
            out += rest[..<slash]
            let digits = rest[rest.index(after: slash)...].prefix { $0.isASCII && $0.isNumber }
            if digits.isEmpty { out += "/" }
            rest = rest[rest.index(after: slash)...].dropFirst(digits.count)
        }
        out += rest
        return DecisionKey(out)
    }
}

extension SearchSpace {
    /// Each decision of `choice` by its key: the option picked there.
    public func keyedDecisions(of choice: SearchChoice) throws -> [DecisionKey: Int] {
        var cursor = 0
        let decided = try root.decide(choice.decisions, &cursor)
        guard cursor == choice.decisions.count else {
            throw SearchSpaceError.invalidChoice(
                choice.decisions, "the space has \(cursor) decision(s) here, the choice \(choice.decisions.count)")
        }
        var out: [DecisionKey: Int] = [:]
        root.collect(decided, path: "$", into: &out)
        return out
    }

    /// Builds a choice decision by decision, depth-first: `choose` gets each decision's key and the options
    /// allowed there (never empty; a `sublist_of`'s distinct or sorted picks narrow them) and returns one of them.
    /// A returned index outside the allowed options is replaced by the first allowed one.
    public func build(choosing choose: (DecisionKey, _ allowed: [Int]) -> Int) -> SearchChoice {
        SearchChoice(root.build(path: "$", choose).decisions)
    }
}

extension SpaceNode {
    fileprivate func collect(_ decided: Decided, path: String, into out: inout [DecisionKey: Int]) {
        switch (self, decided) {
        case (.constant, _): return
        case (.list(let children), .group(let picks)):
            for (index, (child, pick)) in zip(children, picks).enumerated() {
                child.collect(pick, path: "\(path)[\(index)]", into: &out)
            }
        case (.dict(let children), .group(let picks)):
            for (child, pick) in zip(children, picks) { child.value.collect(pick, path: "\(path).\(child.key)", into: &out) }
        case (.oneOf(let candidates), .pick(let index, let child)):
            out[DecisionKey(path)] = index
            candidates[index].collect(child, path: "\(path)/\(index)", into: &out)
        case (.sublistOf(let candidates, _, _, _), .picks(let picks)):
            for (slot, pick) in picks.enumerated() {
                out[DecisionKey("\(path)#\(slot)")] = pick.index
                candidates[pick.index].collect(pick.child, path: "\(path)#\(slot)/\(pick.index)", into: &out)
            }
        default:
            preconditionFailure("a decided tree that does not match its space")
        }
    }

    fileprivate func build(path: String, _ choose: (DecisionKey, [Int]) -> Int) -> Decided {
        func pick(_ key: String, _ allowed: [Int]) -> Int {
            let index = choose(DecisionKey(key), allowed)
            return allowed.contains(index) ? index : allowed[0]
        }
        switch self {
        case .constant: return .fixed
        case .list(let children):
            return .group(children.enumerated().map { $1.build(path: "\(path)[\($0)]", choose) })
        case .dict(let children):
            return .group(children.map { $0.value.build(path: "\(path).\($0.key)", choose) })
        case .oneOf(let candidates):
            let index = pick(path, Array(candidates.indices))
            return .pick(index: index, child: candidates[index].build(path: "\(path)/\(index)", choose))
        case .sublistOf(let candidates, let k, let distinct, let sorted):
            var picks: [Decided.Pick] = []
            for slot in 0..<k {
                let allowed = candidates.indices.filter { option in
                    if distinct, picks.contains(where: { $0.index == option }) { return false }
                    if sorted, let last = picks.last, option < last.index { return false }
                    // Sorted distinct picks must leave enough larger candidates for the slots still to fill.
                    if sorted, distinct, option > candidates.count - (k - slot) { return false }
                    return true
                }
                let index = pick("\(path)#\(slot)", allowed)
                picks.append(
                    Decided.Pick(index: index, child: candidates[index].build(path: "\(path)#\(slot)/\(index)", choose)))
            }
            return .picks(picks)
        }
    }
}
