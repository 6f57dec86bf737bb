import Constraints

/// A parsed search space.
indirect enum SpaceNode: Sendable {
    case constant(JSON)
    case list([SpaceNode])
    case dict([(key: String, value: SpaceNode)])
    case oneOf([SpaceNode])
    case sublistOf([SpaceNode], k: Int, distinct: Bool, sorted: Bool)
}

/// A choice laid over the space's tree: what each decision picked.
indirect enum Decided {
    case fixed
    case group([Decided])
    case pick(index: Int, child: Decided)
    case picks([Pick])

    struct Pick {
        var index: Int
        var child: Decided
    }

    /// The flattened decisions, depth-first.
    var decisions: [Int] {
        var out: [Int] = []
        append(to: &out)
        return out
    }

    private func append(to out: inout [Int]) {
        switch self {
        case .fixed: break
        case .group(let children): for child in children { child.append(to: &out) }
        case .pick(let index, let child):
            out.append(index)
            child.append(to: &out)
        case .picks(let picks):
            for pick in picks {
                out.append(pick.index)
                pick.child.append(to: &out)
            }
        }
    }
}

extension SpaceNode {
    private static let oneOfKeys: Set<String> = ["one_of", "name"]
    private static let sublistKeys: Set<String> = ["sublist_of", "k", "choices_distinct", "choices_sorted", "name"]

    init(_ json: JSON, path: String) throws {
        switch json {
        case .array(let items):
            self = .list(try items.enumerated().map { try SpaceNode($1, path: "\(path)[\($0)]") })
        case .object(let members):
            let keys = members.map(\.key)
            for key in keys {
                let squashed = key.lowercased().filter { $0 != "_" && $0 != "-" && $0 != " " }
                if ["oneof", "sublistof", "sublist", "choiceof"].contains(squashed), key != "one_of",
                    key != "sublist_of"
                {
                    throw SearchSpaceError.invalidSpace(
                        at: path, "unknown key '\(key)'; decisions are spelt 'one_of' and 'sublist_of'")
                }
            }
            if json["one_of"] != nil, json["sublist_of"] != nil {
                throw SearchSpaceError.invalidSpace(at: path, "an object cannot be both 'one_of' and 'sublist_of'")
            }
            if let candidates = json["one_of"] {
                try Self.checkKeys(keys, allowed: Self.oneOfKeys, path: path, kind: "one_of")
                self = .oneOf(try Self.candidates(candidates, path: path + ".one_of"))
            } else if let candidates = json["sublist_of"] {
                try Self.checkKeys(keys, allowed: Self.sublistKeys, path: path, kind: "sublist_of")
                let nodes = try Self.candidates(candidates, path: path + ".sublist_of")
                let distinct = try Self.flag(json["choices_distinct"], default: true, path: path + ".choices_distinct")
                let sorted = try Self.flag(json["choices_sorted"], default: false, path: path + ".choices_sorted")
                guard case .number(let number)? = json["k"], let k = Int(exactly: number), k >= 1 else {
                    throw SearchSpaceError.invalidSpace(
                        at: path + ".k",
                        "'k' must be an integer >= 1 (how many candidates to pick), found "
                            + (json["k"]?.integerText ?? "nothing"))
                }
                if distinct, k > nodes.count {
                    throw SearchSpaceError.invalidSpace(
                        at: path + ".k",
                        "k = \(k) distinct picks from \(nodes.count) candidates is impossible; "
                            + "lower k or set \"choices_distinct\": false")
                }
                self = .sublistOf(nodes, k: k, distinct: distinct, sorted: sorted)
            } else {
                var seen = Set<String>()
                var children: [(key: String, value: SpaceNode)] = []
                for member in members {
                    guard seen.insert(member.key).inserted else {
                        throw SearchSpaceError.invalidSpace(at: path, "key '\(member.key)' appears twice")
                    }
                    children.append((member.key, try SpaceNode(member.value, path: "\(path).\(member.key)")))
                }
                self = .dict(children)
            }
        default:
            self = .constant(json)
        }
    }

    private static func checkKeys(_ keys: [String], allowed: Set<String>, path: String, kind: String) throws {
        for key in keys where !allowed.contains(key) {
            throw SearchSpaceError.invalidSpace(
                at: path,
                "unknown key '\(key)' in a \(kind) decision; allowed: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    private static func candidates(_ json: JSON, path: String) throws -> [SpaceNode] {
        guard case .array(let items) = json else {
            throw SearchSpaceError.invalidSpace(at: path, "candidates must be a JSON array, found \(json.integerText)")
        }
        guard !items.isEmpty else {
            throw SearchSpaceError.invalidSpace(at: path, "the candidate list is empty; give at least one candidate")
        }
        return try items.enumerated().map { try SpaceNode($1, path: "\(path)[\($0)]") }
    }

    private static func flag(_ json: JSON?, default fallback: Bool, path: String) throws -> Bool {
        switch json {
        case nil: return fallback
        case .bool(let value)?: return value
        case let other?:
            throw SearchSpaceError.invalidSpace(at: path, "expected true or false, found \(other.integerText)")
        }
    }

    /// The number of distinct choices, saturating at `Int.max`.
    var size: Int {
        switch self {
        case .constant: return 1
        case .list(let children): return children.reduce(1) { multiply($0, $1.size) }
        case .dict(let children): return children.reduce(1) { multiply($0, $1.value.size) }
        case .oneOf(let candidates): return candidates.reduce(0) { add($0, $1.size) }
        case .sublistOf(let candidates, let k, let distinct, let sorted):
            let sizes = candidates.map(\.size)
            // Picks of k slots: elementary symmetric sums for distinct picks, complete ones for repeats allowed in
            // order, times k! when the order of the picks matters.
            var sums = [1] + [Int](repeating: 0, count: k)
            if distinct {
                for size in sizes {
                    for j in stride(from: k, through: 1, by: -1) { sums[j] = add(sums[j], multiply(sums[j - 1], size)) }
                }
                let permutations = sorted ? 1 : (1...k).reduce(1) { multiply($0, $1) }
                return multiply(sums[k], permutations)
            }
            if sorted {
                for size in sizes {
                    for j in 1...k { sums[j] = add(sums[j], multiply(sums[j - 1], size)) }
                }
                return sums[k]
            }
            let total = sizes.reduce(0, add)
            return (0..<k).reduce(1) { value, _ in multiply(value, total) }
        }
    }

    func decide(_ decisions: [Int], _ cursor: inout Int) throws -> Decided {
        func next(_ count: Int) throws -> Int {
            guard cursor < decisions.count else {
                throw SearchSpaceError.invalidChoice(decisions, "it ends after \(cursor) decision(s); more are needed")
            }
            let index = decisions[cursor]
            guard index >= 0, index < count else {
                throw SearchSpaceError.invalidChoice(
                    decisions, "decision \(cursor) is \(index), but that decision has \(count) option(s) (0..<\(count))"
                )
            }
            cursor += 1
            return index
        }
        switch self {
        case .constant: return .fixed
        case .list(let children): return .group(try children.map { try $0.decide(decisions, &cursor) })
        case .dict(let children): return .group(try children.map { try $0.value.decide(decisions, &cursor) })
        case .oneOf(let candidates):
            let index = try next(candidates.count)
            return .pick(index: index, child: try candidates[index].decide(decisions, &cursor))
        case .sublistOf(let candidates, let k, let distinct, let sorted):
            var picks: [Decided.Pick] = []
            for _ in 0..<k {
                let start = cursor
                let index = try next(candidates.count)
                if distinct, picks.contains(where: { $0.index == index }) {
                    throw SearchSpaceError.invalidChoice(
                        decisions, "decision \(start) picks candidate \(index) again, but the picks must be distinct")
                }
                if sorted, let last = picks.last, index < last.index {
                    throw SearchSpaceError.invalidChoice(
                        decisions,
                        "decision \(start) picks candidate \(index) after \(last.index), but the picks "
                            + "must be in candidate order")
                }
                picks.append(Decided.Pick(index: index, child: try candidates[index].decide(decisions, &cursor)))
            }
            return .picks(picks)
        }
    }

    func value(_ decided: Decided) -> JSON {
        switch (self, decided) {
        case (.constant(let json), _): return json
        case (.list(let children), .group(let picks)):
            return .array(zip(children, picks).map { $0.value($1) })
        case (.dict(let children), .group(let picks)):
            return .object(zip(children, picks).map { (key: $0.key, value: $0.value.value($1)) })
        case (.oneOf(let candidates), .pick(let index, let child)):
            return candidates[index].value(child)
        case (.sublistOf(let candidates, _, _, _), .picks(let picks)):
            return .array(picks.map { candidates[$0.index].value($0.child) })
        default:
            preconditionFailure("a decided tree that does not match its space")
        }
    }

    func sample<Generator: RandomNumberGenerator>(_ generator: inout Generator) -> Decided {
        switch self {
        case .constant: return .fixed
        case .list(let children):
            var out: [Decided] = []
            for child in children { out.append(child.sample(&generator)) }
            return .group(out)
        case .dict(let children):
            var out: [Decided] = []
            for child in children { out.append(child.value.sample(&generator)) }
            return .group(out)
        case .oneOf(let candidates):
            let index = generator.uniform(candidates.count)
            return .pick(index: index, child: candidates[index].sample(&generator))
        case .sublistOf(let candidates, let k, let distinct, let sorted):
            var indices: [Int] = []
            if distinct {
                var pool = Array(candidates.indices)
                for slot in 0..<k {
                    let other = slot + generator.uniform(pool.count - slot)
                    pool.swapAt(slot, other)
                    indices.append(pool[slot])
                }
            } else {
                for _ in 0..<k { indices.append(generator.uniform(candidates.count)) }
            }
            if sorted { indices.sort() }
            var picks: [Decided.Pick] = []
            for index in indices {
                picks.append(Decided.Pick(index: index, child: candidates[index].sample(&generator)))
            }
            return .picks(picks)
        }
    }

    func enumerate() -> [Decided] {
        switch self {
        case .constant: return [.fixed]
        case .list(let children): return Self.product(children.map { $0.enumerate() })
        case .dict(let children): return Self.product(children.map { $0.value.enumerate() })
        case .oneOf(let candidates):
            return candidates.enumerated().flatMap { index, candidate in
                candidate.enumerate().map { Decided.pick(index: index, child: $0) }
            }
        case .sublistOf(let candidates, let k, let distinct, let sorted):
            let options = candidates.map { $0.enumerate() }
            var out: [Decided] = []
            var current: [Decided.Pick] = []
            func fill() {
                if current.count == k {
                    out.append(.picks(current))
                    return
                }
                for index in candidates.indices {
                    if distinct, current.contains(where: { $0.index == index }) { continue }
                    if sorted, let last = current.last, index < last.index { continue }
                    for child in options[index] {
                        current.append(Decided.Pick(index: index, child: child))
                        fill()
                        current.removeLast()
                    }
                }
            }
            fill()
            return out
        }
    }

    private static func product(_ lists: [[Decided]]) -> [Decided] {
        var out: [[Decided]] = [[]]
        for list in lists {
            out = out.flatMap { prefix in list.map { prefix + [$0] } }
        }
        return out.map { .group($0) }
    }

    /// Walks the mutable decisions in order, counting `target` down; the decision met at 0 changes. With a target
    /// that never reaches 0 it only counts: `Int.max - target` afterwards is the number of mutable decisions.
    func mutate<Generator: RandomNumberGenerator>(
        _ decided: Decided, _ target: inout Int, _ generator: inout Generator
    ) -> Decided {
        switch (self, decided) {
        case (.constant, _): return decided
        case (.list(let children), .group(let picks)):
            var out: [Decided] = []
            for (child, pick) in zip(children, picks) { out.append(child.mutate(pick, &target, &generator)) }
            return .group(out)
        case (.dict(let children), .group(let picks)):
            var out: [Decided] = []
            for (child, pick) in zip(children, picks) { out.append(child.value.mutate(pick, &target, &generator)) }
            return .group(out)
        case (.oneOf(let candidates), .pick(let index, let child)):
            if candidates.count > 1 {
                if target == 0 {
                    target -= 1
                    var other = generator.uniform(candidates.count - 1)
                    if other >= index { other += 1 }
                    return .pick(index: other, child: candidates[other].sample(&generator))
                }
                target -= 1
            }
            return .pick(index: index, child: candidates[index].mutate(child, &target, &generator))
        case (.sublistOf(let candidates, _, let distinct, let sorted), .picks(var picks)):
            for slot in picks.indices {
                let alternatives = candidates.indices.filter { option in
                    guard option != picks[slot].index else { return false }
                    if distinct, picks.contains(where: { $0.index == option }) { return false }
                    if sorted {
                        if slot > 0, option < picks[slot - 1].index { return false }
                        if slot + 1 < picks.count, option > picks[slot + 1].index { return false }
                    }
                    return true
                }
                if !alternatives.isEmpty {
                    if target == 0 {
                        target -= 1
                        let option = alternatives[generator.uniform(alternatives.count)]
                        picks[slot] = Decided.Pick(index: option, child: candidates[option].sample(&generator))
                        continue
                    }
                    target -= 1
                }
                picks[slot].child = candidates[picks[slot].index].mutate(picks[slot].child, &target, &generator)
            }
            return .picks(picks)
        default:
            preconditionFailure("a decided tree that does not match its space")
        }
    }
}

private func add(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? Int.max : sum
}

private func multiply(_ a: Int, _ b: Int) -> Int {
    let (product, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? Int.max : product
}
