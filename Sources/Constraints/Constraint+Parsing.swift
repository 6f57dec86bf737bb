extension Constraint {
    /// Reads a constraint written as `[NAME=]METRIC<=TARGET[:OPTION[,OPTION...]]`.
    ///
    /// - `TARGET` is a number with an optional SI suffix: `k` (1e3), `M` (1e6), `G` (1e9), `T` (1e12).
    /// - Options: a preset (`hard`, the default; `soft`; `vertex-hard`; `vertex-soft`), `weight=W`,
    ///   `alpha=A`, `beta=B`, `unit=U`.
    ///
    /// Examples: `flops<=0.8M:hard`, `latency_ms<=3:soft`, `memory_bytes<=2M:vertex-soft,weight=0.5`,
    /// `cpu=latency_ms<=3:alpha=-0.07,beta=-0.5`.
    public init(parsing spec: String, scorer: (any ConstraintScorer)? = nil, unit defaultUnit: String = "") throws {
        let text = spec.trimmingSpaces()
        guard let range = text.range(of: "<=") else {
            throw ConstraintError.invalidSpec(
                spec,
                text.contains("<")
                    ? "constraints are 'at most' bounds: write '<=' (a strict '<' is not meant)"
                    : "it has no '<=' between the metric and the target")
        }
        var left = String(text[..<range.lowerBound]).trimmingSpaces()
        var right = String(text[range.upperBound...]).trimmingSpaces()
        var name: String?
        if let eq = left.firstIndex(of: "=") {
            name = String(left[..<eq]).trimmingSpaces()
            left = String(left[left.index(after: eq)...]).trimmingSpaces()
            guard Self.isIdentifier(name!) else {
                throw ConstraintError.invalidSpec(spec, "the name '\(name!)' must be letters, digits, '_', '.' or '-'")
            }
        }
        guard Self.isIdentifier(left) else {
            throw ConstraintError.invalidSpec(
                spec, left.isEmpty ? "the metric is missing" : "the metric '\(left)' must be letters, digits, '_', '.' or '-'")
        }
        var options: [Substring] = []
        if let colon = right.firstIndex(of: ":") {
            options = right[right.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false)
            right = String(right[..<colon]).trimmingSpaces()
        }
        guard let target = Self.parseNumber(right) else {
            throw ConstraintError.invalidSpec(
                spec, right.isEmpty ? "the target is missing" : "the target '\(right)' is not a number (suffixes k, M, G, T allowed)")
        }
        var exponents = Exponents.hard
        var weight = 1.0
        var alpha: Double?
        var beta: Double?
        var unit = defaultUnit
        for raw in options {
            let option = String(raw).trimmingSpaces()
            if let preset = Exponents.presets.first(where: { $0.name == option }) {
                exponents = preset.exponents
                continue
            }
            let parts = option.split(separator: "=", maxSplits: 1).map { String($0).trimmingSpaces() }
            guard parts.count == 2 else {
                let names = Exponents.presets.map(\.name).joined(separator: ", ")
                throw ConstraintError.invalidSpec(
                    spec, option.isEmpty ? "an option is empty" : "unknown option '\(option)' (presets: \(names))")
            }
            if parts[0] == "unit" {
                unit = parts[1]
                continue
            }
            guard let value = Self.parseNumber(parts[1]) else {
                throw ConstraintError.invalidSpec(spec, "option '\(parts[0])' needs a number, not '\(parts[1])'")
            }
            switch parts[0] {
            case "weight": weight = value
            case "alpha": alpha = value
            case "beta": beta = value
            default: throw ConstraintError.invalidSpec(spec, "unknown option '\(parts[0])' (known: weight, alpha, beta, unit)")
            }
        }
        if let alpha { exponents.alpha = alpha }
        if let beta { exponents.beta = beta }
        try self.init(
            name: name, metric: left, unit: unit, target: target, exponents: exponents, weight: weight, scorer: scorer)
    }

    /// True for names made of ASCII letters, digits, `_`, `.` and `-`.
    public static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty
            && text.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
                    || c == 0x2E || c == 0x2D
            }
    }

    /// Reads `1.5`, `2e6`, `0.8M`, `300k`; nil for anything else (including NaN and infinity).
    public static func parseNumber(_ text: String) -> Double? {
        var body = Substring(text)
        var scale = 1.0
        switch body.last {
        case "k": scale = 1e3
        case "M": scale = 1e6
        case "G": scale = 1e9
        case "T": scale = 1e12
        default: break
        }
        if scale != 1 { body = body.dropLast() }
        guard !body.isEmpty, body.allSatisfy({ "0123456789.eE+-".contains($0) }), let value = Double(body),
            value.isFinite
        else { return nil }
        return value * scale
    }
}

extension String {
    func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice.removeFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice.removeLast() }
        return String(slice)
    }
}
