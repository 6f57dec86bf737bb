/// The hard activations that exporters (ours among them) write decomposed into elementary ops:
/// `Clip(x + 3, 0, 6) * (1/6)` (or `/ 6`) is a hard sigmoid, and `x` times that is a hard swish. The native
/// engine's planner fuses such a chain into the op that produces `x`, and the predictor's kernel features group
/// nodes the same way: both ask this one matcher, so that the kernels the features describe are the kernels the
/// engine times.
extension GraphAnalysis {
    /// A decomposed hard activation found after a value.
    package enum HardActivation: Equatable, Sendable {
        /// `Clip(x + 3, 0, 6) / 6`: ONNX's HardSigmoid with alpha 1/6, beta 1/2.
        case hardSigmoid
        /// `x * Clip(x + 3, 0, 6) / 6`.
        case hardSwish
    }

    /// The decomposed hard activation that alone reads `output` (a value that is not a graph output), with the
    /// indices of the nodes it replaces, the last of which writes the activated value; nil when there is none.
    /// `consumers` maps each value to the indices of the nodes that read it.
    package func decomposedHardActivation(
        after output: String, consumers: [String: [Int]]
    ) -> (activation: HardActivation, nodes: [Int])? {
        guard !outputs.contains(output), let users = consumers[output] else { return nil }
        func soleConsumer(_ value: String) -> Int? {
            guard !outputs.contains(value), let users = consumers[value], users.count == 1 else { return nil }
            return users[0]
        }
        if users.count == 1, let chain = hardSigmoidChain(from: users[0], input: output, soleConsumer) {
            return (.hardSigmoid, chain)
        }
        if users.count == 2 {
            for (start, multiply) in [(users[0], users[1]), (users[1], users[0])] {
                guard let chain = hardSigmoidChain(from: start, input: output, soleConsumer) else { continue }
                let gate = nodes[chain[chain.count - 1]].node.outputs[0]
                let node = nodes[multiply].node
                guard node.opType == "Mul", Set(node.inputs) == [output, gate], soleConsumer(gate) == multiply,
                    shape(node.outputs[0]) == shape(output)
                else { continue }
                return (.hardSwish, chain + [multiply])
            }
        }
        return nil
    }

    /// The value of a one-element float constant.
    private func scalar(_ name: String) -> Float? {
        guard let tensor = constant(name), tensor.floats.count == 1 else { return nil }
        return tensor.floats[0]
    }

    /// The nodes of `Clip(input + 3, 0, 6) * (1/6)` (or `/ 6`) when node `start` is its Add, each intermediate read
    /// only by the next and every value of `input`'s shape.
    private func hardSigmoidChain(
        from start: Int, input: String, _ soleConsumer: (String) -> Int?
    ) -> [Int]? {
        let add = nodes[start].node
        guard add.opType == "Add", add.inputs.count == 2, add.inputs.contains(input) else { return nil }
        let three = add.inputs[0] == input ? add.inputs[1] : add.inputs[0]
        guard scalar(three) == 3, let clipIndex = soleConsumer(add.outputs[0]) else { return nil }
        let clip = nodes[clipIndex].node
        guard clip.opType == "Clip", clip.inputs.first == add.outputs[0], clipsToZeroSix(clip),
            let scaleIndex = soleConsumer(clip.outputs[0])
        else { return nil }
        let scale = nodes[scaleIndex].node
        guard scale.inputs.count == 2 else { return nil }
        let clipped = clip.outputs[0]
        switch scale.opType {
        case "Mul" where scale.inputs.contains(clipped):
            let sixth = scale.inputs[0] == clipped ? scale.inputs[1] : scale.inputs[0]
            guard let value = scalar(sixth), abs(value - 1.0 / 6) <= 1e-6 else { return nil }
        case "Div" where scale.inputs[0] == clipped:
            guard scalar(scale.inputs[1]) == 6 else { return nil }
        default:
            return nil
        }
        let inputShape = shape(input)
        guard [add, clip, scale].allSatisfy({ shape($0.outputs[0]) == inputShape }) else { return nil }
        return [start, clipIndex, scaleIndex]
    }

    /// Whether a Clip's bounds are the constants 0 and 6 (attributes before opset 11, inputs from it on).
    private func clipsToZeroSix(_ clip: OnnxNode) -> Bool {
        if opset < 11 { return clip.float("min", default: -1) == 0 && clip.float("max", default: -1) == 6 }
        guard let low = clip.input(1), let high = clip.input(2) else { return false }
        return constant(low)?.floats.first == 0 && constant(high)?.floats.first == 6
    }
}
