import Foundation
import Search
import Testing
import Trainer

/// The three ways a trainer command reports metrics, with good and malformed input.
@Suite struct TrainerMetricsTests {
    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test func hypertuneLastLineWinsWithTagPairsAndStrings() throws {
        // What vertex-ai-nas's NasMetricsReporter writes: values as strings, the newest report last.
        let text = """
            {"timestamp": 1.5, "trial": "3", "nas_reward": "0.5", "global_step": "1", "checkpoint_path": "", "model_flops": "0.0", "key_0": "top_1_accuracy", "value_0": "0.6"}
            {"timestamp": 2.5, "trial": "3", "nas_reward": "0.91", "global_step": "2", "checkpoint_path": "", "model_flops": "1200.0", "key_0": "top_1_accuracy", "value_0": "0.93", "key_1": "a", "value_1": "1", "key_2": "b", "value_2": "2", "key_3": "c", "value_3": "3", "key_4": "d", "value_4": "4", "key_5": "e", "value_5": 5.5, "extra": 7}

            """
        let metrics = try TrainerMetrics.hypertune(bytes(text), source: "h")
        #expect(metrics["nas_reward"] == 0.91)
        #expect(metrics["top_1_accuracy"] == 0.93)
        // No limit of five extra metrics, numbers or strings alike.
        #expect(metrics["e"] == 5.5 && metrics["d"] == 4)
        #expect(metrics["model_flops"] == 1200 && metrics["extra"] == 7)
        #expect(metrics["timestamp"] == nil && metrics["global_step"] == nil && metrics["trial"] == nil)
        // A reporter's model_flops of 0 means "not reported".
        let zero = try TrainerMetrics.hypertune(bytes(#"{"x": "1", "model_flops": "0.0"}"#), source: "h")
        #expect(zero == ["x": 1])
    }

    @Test func hypertuneRefusesMalformedInputClearly() {
        let cases: [(String, String)] = [
            ("", "the file is empty"),
            ("\n  \n", "the file is empty"),
            (#"{"a": "1"}"# + "\n{\"a\": \"2\"", "h, line 2: not JSON"),
            ("[1, 2]", "a hypertune line is a JSON object"),
            (#"{"key_0": "acc"}"#, "key_0 and value_0 go together"),
            (#"{"value_1": "0.5"}"#, "key_1 and value_1 go together"),
            (#"{"key_0": 3, "value_0": "1"}"#, "\"key_0\" names a metric"),
            (#"{"key_0": "acc", "value_0": "high"}"#, #"metric "value_0 (acc)" is "high", not a finite number"#),
            (#"{"key_0": "acc", "value_0": null}"#, "not a number"),
            (#"{"acc": "NaN"}"#, "not a finite number"),
            (#"{"acc": NaN}"#, "not finite"),
        ]
        for (text, message) in cases {
            #expect(throws: TrainerMetricsError.self, "\(text)") {
                try TrainerMetrics.hypertune(bytes(text), source: "h")
            }
            do {
                _ = try TrainerMetrics.hypertune(bytes(text), source: "h")
            } catch {
                #expect("\(error)".contains(message), "\(text): \(error)")
            }
        }
    }

    @Test func metricsJSONTakesNumbersAndSkipsTheTrainersOwnData() throws {
        let metrics = try TrainerMetrics.metricsJSON(
            bytes(
                #"{"top_1_accuracy": 0.9, "loss": "0.25", "history": [1, 2], "config": {"lr": 1}, "ok": true, "n": null}"#
            ),
            source: "m")
        #expect(metrics == ["top_1_accuracy": 0.9, "loss": 0.25])
        for (text, message) in [
            ("", "not JSON"), ("{\"a\": ", "not JSON"), ("[0.9]", "expected one JSON object"),
            (#"{"top_1_accuracy": "ninety"}"#, "is \"ninety\", not a finite number"), ("\u{FF}\u{FE}", "not JSON"),
        ] {
            do {
                _ = try TrainerMetrics.metricsJSON(bytes(text), source: "m")
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error is TrainerMetricsError && "\(error)".hasPrefix("m: ") && "\(error)".contains(message))
            }
        }
    }

    @Test func standardOutputUsesKatibsDefaultFilter() throws {
        let output = """
            Epoch 1/2
            epoch=1 loss=0.75 accuracy = 0.61
            some log line without metrics, a=b and x= y
            val-acc=9.5e-1|top_1_accuracy=+0.82
            epoch=2 loss=0.5 accuracy=0.70
            """
        let metrics = try TrainerMetrics.standardOutput(bytes(output))
        #expect(metrics["epoch"] == 2 && metrics["loss"] == 0.5 && metrics["accuracy"] == 0.70)
        // Katib's name class takes '-' and '|' too, so the second name begins with the bar.
        #expect(metrics["val-acc"] == 0.95 && metrics["|top_1_accuracy"] == 0.82)
        #expect(metrics["a"] == nil && metrics["x"] == nil)
        #expect(metrics.values.allSatisfy { $0.isFinite })

        let custom = try TrainerMetrics.standardOutput(bytes("acc: 0.5\nacc: 0.75\n"), pattern: #"(\w+):\s*([0-9.]+)"#)
        #expect(custom == ["acc": 0.75])
        #expect(throws: TrainerMetricsError.self) { try TrainerMetrics.standardOutput([], pattern: "(unclosed") }
        #expect(throws: TrainerMetricsError.self) { try TrainerMetrics.standardOutput([], pattern: #"(\w+)=\d+"#) }
    }

    /// Random and mutated input: every reader returns metrics or throws its error, and never crashes.
    @Test func readersSurviveMutatedInput() {
        var generator = SeededGenerator(seed: 11)
        let seeds = [
            #"{"timestamp": 2.5, "trial": "3", "nas_reward": "0.91", "key_0": "top_1_accuracy", "value_0": "0.93"}"#,
            #"{"top_1_accuracy": 0.9, "loss": "0.25", "history": [1, {"a": [2]}]}"#, "epoch=1 loss=0.75 acc=0.6e-1",
        ].map { Array($0.utf8) }
        let alphabet = Array(#"{}[]":,.-+eE0123456789 \n=|_abcNaIfinty"#.utf8) + [0, 0xFF, 0xC3]
        for round in 0..<3000 {
            var input = seeds[round % seeds.count]
            for _ in 0...(round % 7) {
                let position = input.isEmpty ? 0 : Int(generator.next() % UInt64(input.count))
                switch generator.next() % 4 {
                case 0 where !input.isEmpty: input.remove(at: position)
                case 1: input.insert(alphabet[Int(generator.next() % UInt64(alphabet.count))], at: position)
                case 2 where !input.isEmpty: input[position] = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                default: input = Array(input.prefix(position))
                }
            }
            for read in [
                { try TrainerMetrics.hypertune(input, source: "h") },
                { try TrainerMetrics.metricsJSON(input, source: "m") },
                { try TrainerMetrics.standardOutput(input) },
            ] as [() throws -> [String: Double]] {
                do {
                    let metrics = try read()
                    #expect(metrics.values.allSatisfy { $0.isFinite })
                } catch {
                    #expect(error is TrainerMetricsError)
                }
            }
        }
    }
}
