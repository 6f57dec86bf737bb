import Foundation
import Search
import TestSupport
import Testing

/// Reading curves from what running trials write, and the curves table of older jobs.
@Suite struct TrialCurveTests {
    static let seed: UInt64 = ProcessInfo.processInfo.environment["NAS_FUZZ_SEED"].flatMap { UInt64($0) } ?? 20_261_202

    @Test func hypertuneLinesWithAStepAreTheCurve() {
        let text = """
            {"global_step": "1", "top_1_accuracy": "0.5"}
            {"global_step": 2, "top_1_accuracy": 0.6}
            {"global_step": "0", "top_1_accuracy": "0.9"}
            {"global_step": "3", "top_1_accu
            {"global_step": "4", "other": "0.1"}
            """
        let points = TrialCurve.hypertunePoints(Array(text.utf8), accuracyMetric: "top_1_accuracy")
        #expect(points.map(\.step) == [1, 2] && points.map(\.value) == [0.5, 0.6])
    }

    @Test func outputLinesNeedAStepAndTheAccuracy() throws {
        let expression = try TrainerMetrics.expression(TrainerMetrics.katibDefaultPattern)
        let text = "epoch=1 loss=2\nglobal_step=1 val_acc=0.4\nglobal_step=2 loss=1\nval_acc=0.9\nglobal_step=3 val_acc=0.7\n"
        let points = TrialCurve.outputPoints(Array(text.utf8), accuracyMetric: "val_acc", expression: expression)
        #expect(points.map(\.step) == [1, 3] && points.map(\.value) == [0.4, 0.7])
    }

    /// Seeded random bytes and mutated reports never crash the readers, and whatever they return is finite.
    @Test func fuzzedInputNeverCrashesTheReaders() throws {
        print("TrialCurveTests: seed \(Self.seed) (NAS_FUZZ_SEED=\(Self.seed) reproduces this run)")
        var values = SeededValues(seed: Self.seed)
        let expression = try TrainerMetrics.expression(TrainerMetrics.katibDefaultPattern)
        let valid = Array("{\"global_step\": \"2\", \"top_1_accuracy\": \"0.5\"}\nglobal_step=3 top_1_accuracy=0.6\n".utf8)
        for round in 0..<2000 {
            var bytes = valid
            if round % 2 == 0 {
                bytes = (0..<Int(values.next() * 200)).map { _ in UInt8(values.next() * 256) }
            } else {
                for _ in 0..<(1 + Int(values.next() * 6)) {
                    bytes[Int(values.next() * Double(bytes.count))] = UInt8(values.next() * 256)
                }
            }
            let points =
                TrialCurve.hypertunePoints(bytes, accuracyMetric: "top_1_accuracy")
                + TrialCurve.outputPoints(bytes, accuracyMetric: "top_1_accuracy", expression: expression)
            #expect(points.allSatisfy { $0.step.isFinite && $0.step > 0 && $0.value.isFinite })
        }
    }

    @Test func aSchemaTwoJobGetsTheCurvesTableWhenOpenedToWriteAndStaysAsItWasReadOnly() async throws {
        let directory = try TestSupport.temporaryDirectory("nas-curves").path
        let store = try JobStore.create(directory: directory, config: sampleConfig())
        let id = try store.addTrial(parameters: "{}", decisions: [0])
        #expect(try store.schemaVersion() == 3)
        // Made a schema 2 job: no curves table.
        let sqlite = directory + "/" + JobStore.fileName
        let downgrade = try await TestSupport.run(
            "/usr/bin/python3",
            ["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('DROP TABLE curves'); c.execute(\"UPDATE job SET value='2' WHERE key='schema'\"); c.commit()", sqlite])
        try #require(downgrade.status == 0, "\(downgrade.stderr)")

        let reader = try JobStore.open(directory: directory, readOnly: true)
        #expect(try reader.curvePoints().isEmpty && reader.trials().count == 1)
        #expect(try reader.schemaVersion() == 2)
        let writer = try JobStore.open(directory: directory)
        #expect(try writer.schemaVersion() == 3)
        try writer.addCurvePoints([CurvePoint(trialID: id, step: 1, value: 0.5)])
        #expect(try writer.curves()[id]?.map(\.value) == [0.5])
        // A run of the trial starts its curve over.
        try writer.markRunning(id)
        #expect(try writer.curves()[id] == nil)
    }
}
