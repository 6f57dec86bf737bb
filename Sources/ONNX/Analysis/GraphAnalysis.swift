/// Static shapes, element types and load-time constants of every value of a graph, for batch-size-1 inference.
///
/// Free dimensions of the inputs (`N`, `batch_size`, unknown) are bound to 1. Nodes whose inputs are all known
/// at load time (the Shape / Gather / Concat / Reshape chains exporters emit, Constant, ConstantOfShape) are
/// evaluated here, once, and their outputs become constants; the others are kept, with their shapes, in `nodes`.
package struct GraphAnalysis {
    package struct Value {
        package var shape: [Int]
        package var type: OnnxDataType
        package var constant: HostTensor?
    }

    /// A node left to run, with the static shapes of its inputs and outputs.
    package struct Node {
        package var node: OnnxNode
        package var inputShapes: [[Int]?]
        package var outputShapes: [[Int]]
    }

    package let opset: Int64
    package private(set) var values: [String: Value] = [:]
    package private(set) var nodes: [Node] = []
    /// The graph inputs that are fed at run time, with their bound shapes.
    package private(set) var inputs: [(name: String, shape: [Int])] = []
    package let outputs: [String]

    /// Analyses `model`; an operator outside the known set (or outside the standard domain) is an error naming
    /// every such node of the graph.
    package init(model: OnnxModel) throws {
        let graph = model.graph
        opset = model.opset ?? 13
        let unknown = graph.nodes.filter { !ShapeInference.knows($0) }
        guard unknown.isEmpty else {
            throw OnnxError.unsupportedOperators(unknown.map { ($0.opType, $0.domain, $0.displayName) })
        }
        outputs = graph.outputs.map(\.name)
        for tensor in graph.initializers {
            guard let host = HostTensor(tensor) else {
                values[tensor.name] = Value(shape: tensor.dims, type: tensor.dataType, constant: nil)
                continue
            }
            values[tensor.name] = Value(shape: host.shape, type: host.type, constant: host)
        }
        for input in graph.inputs where values[input.name] == nil {
            guard let shape = input.shape else {
                throw OnnxError.shapeInference(
                    "graph input '\(input.name)'",
                    "the model records no shape for it; re-export with a static input shape")
            }
            let bound = shape.map { dimension -> Int in
                if case .value(let size) = dimension { return size }
                return 1
            }
            guard ShapeMath.count(bound) <= ShapeMath.maximumCount else {
                throw OnnxError.shapeInference(
                    "graph input '\(input.name)'", "its shape \(bound) has more than 2^30 elements")
            }
            values[input.name] = Value(shape: bound, type: input.elementType == .undefined ? .float : input.elementType)
            inputs.append((input.name, bound))
        }
        for node in graph.nodes {
            // ONNX assigns every value once. A node output that reuses the name of a graph input, an initializer or
            // an earlier output would give one name two buffers of different sizes (the fuzzer found a run writing
            // a graph input into a smaller buffer that way).
            for output in node.outputs where !output.isEmpty && values[output] != nil {
                throw OnnxError.invalidModel(
                    "\(node.displayName) produces '\(output)', which is already a graph input, an initializer or the output of an earlier node; every value must have one producer")
            }
            let named = node.outputs.filter { !$0.isEmpty }
            guard Set(named).count == named.count else {
                throw OnnxError.invalidModel("\(node.displayName) names an output twice (\(node.outputs))")
            }
            var inputValues: [Value?] = []
            for (index, name) in node.inputs.enumerated() {
                if name.isEmpty {
                    inputValues.append(nil)
                    continue
                }
                guard let value = values[name] else {
                    throw OnnxError.invalidModel(
                        "input \(index) '\(name)' of \(node.displayName) is produced by no earlier node, initializer or graph input (the nodes must be in topological order)"
                    )
                }
                inputValues.append(value)
            }
            let results = try ShapeInference(opset: opset).outputs(of: node, inputs: inputValues)
            for (output, value) in zip(node.outputs, results) where !output.isEmpty {
                guard ShapeMath.count(value.shape) <= ShapeMath.maximumCount else {
                    throw OnnxError.shapeInference(
                        "output '\(output)' of \(node.displayName)",
                        "its shape \(value.shape) has more than 2^30 elements")
                }
                values[output] = value
            }
            if results.contains(where: { $0.constant == nil }) {
                nodes.append(
                    Node(
                        node: node, inputShapes: inputValues.map { $0?.shape },
                        outputShapes: results.map(\.shape)))
            }
        }
        for output in outputs where values[output] == nil {
            throw OnnxError.invalidModel("graph output '\(output)' is produced by no node")
        }
    }

    package func shape(_ name: String) -> [Int]? { values[name]?.shape }
    package func constant(_ name: String) -> HostTensor? { values[name]?.constant }
}
