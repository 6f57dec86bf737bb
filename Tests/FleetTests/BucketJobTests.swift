import Foundation
import Testing

@testable import Fleet

/// A search job whose root output dir is a GCS bucket (fake-gcs-server): its outputs are published there in
/// vertex-ai-nas's layout, while its state stays in a local folder.
@Suite("Search jobs publishing to a bucket")
struct BucketJobTests {
    static let quick = [
        "--num-epochs", "1", "--train-limit", "600", "--test-limit", "200", "--latency-repeats", "5",
        "--threads", "1", "--max-trials", "2", "--max-parallel-trials", "2", "--algorithm", "random",
    ]

    @Test func publishesTrialsReportAndStatusToTheBucket() async throws {
        let emulator = try await FakeGCS()
        defer { emulator.stop() }
        try emulator.createBucket("nas-jobs")
        let state = StorageTestSupport.temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let environment = ["STORAGE_EMULATOR_HOST": emulator.hostAndPort]
        let nas = try TestPaths.nasBinary()
        let result = try await runProgram(
            nas,
            ["search", "--root-output-dir", "gs://nas-jobs/runs", "--state-dir", state, "--job-name", "remote",
             "--target-latency-millisec", "1"] + Self.quick,
            environment: environment)
        try #require(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("outputs: gs://nas-jobs/runs/remote"))

        let bucket = try StorageLocation.parse("gs://nas-jobs/runs/remote").open(environment: environment)
        let status = try #require(try bucket.read("job_status.json"))
        #expect(String(decoding: status.data, as: UTF8.self).contains("SUCCEEDED"))
        #expect(try bucket.exists("report.html"))
        for trial in [1, 2] {
            for file in ["nas_params_str.json", "saved_model/model.onnx", "saved_model/model_latency.json",
                         "metrics.json", "job_status.json"] {
                #expect(try bucket.exists("\(trial)/\(file)"), "trial \(trial) lacks \(file)")
            }
            let latency = try LatencyMetrics.decode(
                try #require(try bucket.read("\(trial)/saved_model/model_latency.json")).data, path: "latency")
            #expect(latency.latencyMilliseconds > 0)
        }
        #expect(FileManager.default.fileExists(atPath: state + "/remote/nas_job.sqlite"))

        // A bucket that does not exist is refused before anything runs, and leaves no job behind.
        let missing = try await runProgram(
            nas,
            ["search", "--root-output-dir", "gs://no-such-bucket/runs", "--state-dir", state, "--job-name", "lost"]
                + Self.quick,
            environment: environment)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("cannot publish the job's outputs to gs://no-such-bucket/runs/lost"))
        #expect(!FileManager.default.fileExists(atPath: state + "/lost"))
    }
}
